"""Input validation for the estimators, run on concrete arrays outside jit.

Every estimator calls these before it enters a jitted kernel, so a bad input
gives one EstimatorError that says what to fix instead of a JAX traceback.
"""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import numpy as np

from transferjax.errors import EstimatorError


def as_labels(y, name: str = "y") -> np.ndarray:
  """Returns `y` as int32 `[n]`; raises unless it holds integer class ids."""
  try:
    arr = np.asarray(y)
  except Exception as e:  # e.g. a traced array passed under jit
    raise EstimatorError(
        f"{name} must be a concrete array of class ids ({e}); call the "
        "estimator outside jax.jit (its kernel is jitted inside).") from e
  if arr.ndim == 2 and arr.shape[1] == 1:
    arr = arr[:, 0]
  if arr.ndim != 1:
    raise EstimatorError(
        f"{name} must be a 1-D array of integer class labels, got shape "
        f"{arr.shape}; pass labels (e.g. argmax of one-hot rows), not one-hot.")
  if arr.dtype == bool:
    arr = arr.astype(np.int32)
  if not np.issubdtype(arr.dtype, np.integer):
    if not np.issubdtype(arr.dtype, np.floating):
      raise EstimatorError(f"{name} must hold integer class labels, got dtype "
                           f"{arr.dtype}.")
    if not np.all(np.isfinite(arr)):
      raise EstimatorError(f"{name} contains NaN or inf; labels must be finite "
                           "integers (drop or fix those rows).")
    if not np.all(arr == np.round(arr)):
      raise EstimatorError(
          f"{name} must hold integer class labels, but has non-integer values "
          f"(dtype {arr.dtype}); Y is discrete here - pass class ids, or use a "
          "continuous estimator (cmi_fp) for a continuous variable.")
  return arr.astype(np.int32)


def as_features(x, n: Optional[int], name: str, batched: bool = False
               ) -> np.ndarray:
  """Returns `x` as float32 `[n, d]` (or `[q, n, d]` if `batched`)."""
  try:
    arr = np.asarray(x)
  except Exception as e:
    raise EstimatorError(
        f"{name} must be a concrete array ({e}); call the estimator outside "
        "jax.jit (its kernel is jitted inside).") from e
  if not (np.issubdtype(arr.dtype, np.floating)
          or np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
    raise EstimatorError(f"{name} must be numeric, got dtype {arr.dtype}.")
  want = 3 if batched else 2
  if arr.ndim == want - 1:
    arr = arr[..., None]
  if arr.ndim != want:
    shape = "[q, n, d]" if batched else "[n] or [n, d]"
    raise EstimatorError(f"{name} must have shape {shape}, got {arr.shape}.")
  if n is not None and arr.shape[-2] != n:
    raise EstimatorError(
        f"{name} has {arr.shape[-2]} rows but y has {n}; every input must hold "
        "one row per sample, in the same order.")
  if arr.shape[-1] == 0:
    raise EstimatorError(f"{name} has zero feature columns.")
  arr = arr.astype(np.float32)
  if not np.all(np.isfinite(arr)):
    bad = int(np.sum(~np.isfinite(arr).reshape(-1, arr.shape[-1]).all(-1)))
    raise EstimatorError(
        f"{name} contains NaN or inf in {bad} row(s); fix the features (e.g. "
        "a diverged network) or drop those rows from y, f and t together.")
  return arr


def check_k(k, n: int) -> int:
  if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
    raise EstimatorError(f"k must be a positive int, got {k!r}.")
  if k >= n:
    raise EstimatorError(
        f"k={k} needs at least k+1={k + 1} samples but only {n} are usable "
        "(after dropping singleton classes); lower k (3 is the usual choice) "
        "or use more samples.")
  return int(k)


def check_classes(y: np.ndarray) -> np.ndarray:
  """Raises unless y has >= 2 classes; returns the per-class counts."""
  classes, counts = np.unique(y, return_counts=True)
  if classes.size < 2:
    raise EstimatorError(
        f"y has a single class ({classes.tolist()}); I(Y; F | T) is 0 by "
        "definition. Check the labels (a split that kept one class?).")
  return counts


def drop_singletons(y: np.ndarray, k: int
                   ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
  """Mask of samples whose class has >= 2 members (None if all do).

  Singleton classes have no same-class neighbour, so (as scikit-learn's
  `_compute_mi_cd`) their samples are removed before estimating. Classes with
  2..k members use k_i = min(k, N_y - 1) inside the kernel; both cases warn.
  """
  classes, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
  small = classes[counts <= k]
  if small.size:
    warnings.warn(
        f"classes {small.tolist()} have <= k={k} members (sizes "
        f"{counts[counts <= k].tolist()}): they use k_i = min(k, N_y - 1) and "
        "singleton classes are dropped. Merge rare classes or lower k if this "
        "is unintended.", stacklevel=4)
  keep = counts[inv] > 1
  if keep.all():
    return y, None
  if np.unique(y[keep]).size < 2:
    raise EstimatorError(
        "after dropping singleton classes fewer than 2 classes remain; the "
        "k-NN estimators need >= 2 samples in at least 2 classes.")
  return y[keep], keep


def check_inputs(y, f, t, *, k: Optional[int] = None, batched_f: bool = False,
                 knn: bool = True):
  """Validates and converts (y, f, t) for an estimator.

  Args:
    y: class labels `[n]`.
    f: features `[n, dF]` (`[n]` allowed), or `[q, n, dF]` if `batched_f`.
    t: conditioning features `[n, dT]`, `[n]`, or None.
    k: neighbour count for k-NN estimators (None for binned ones).
    batched_f: whether f carries a leading source axis.
    knn: whether to drop singleton classes (k-NN estimators only).

  Returns:
    (y int32 [m], f float32, t float32 or None, keep mask [n] or None), with
    m = n unless singleton classes were dropped.
  """
  y = as_labels(y)
  n = y.shape[0]
  f = as_features(f, n, "f", batched=batched_f)
  t = None if t is None else as_features(t, n, "t")
  check_classes(y)
  keep = None
  if knn:
    if k is None:
      raise EstimatorError("internal: k-NN check without k")
    check_k(k, n)
    y, keep = drop_singletons(y, k)
    if keep is not None:
      f = f[..., keep, :]
      t = None if t is None else t[keep]
    check_k(k, y.shape[0])
  return y, f, t, keep
