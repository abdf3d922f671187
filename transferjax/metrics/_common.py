"""Shared plumbing for the metrics: input checks and the float64 eager path.

Every public metric has two paths:

* **Eager** (called on concrete arrays, the normal case): the inputs are checked
  here, outside jit, and raise :class:`~transferjax.errors.EstimatorError` with
  a fix; then a jitted core runs inside ``jax.enable_x64(True)`` on float64
  copies, and the score comes back as a NumPy ``float64``. Returning NumPy,
  not a jax array, keeps a float64 jax array from leaking into callers that run
  with x64 off (JAX would silently truncate it).
* **Traced** (called under the user's own ``jax.jit``/``jax.vmap``): no value
  checks are possible; ``num_classes`` must be passed, and the core runs in the
  ambient precision (wrap your jit in ``with jax.enable_x64(True):`` to keep
  float64, which LogME, H-score, SFDA and TransRate need on ill-conditioned
  features).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from transferjax.errors import EstimatorError


def is_traced(*xs: Any) -> bool:
  """True when any argument is a JAX tracer (we are inside jit/vmap)."""
  return any(isinstance(x, jax.core.Tracer) for x in xs)


def as_float(x: Any) -> jax.Array:
  """Casts to the default float dtype (float64 under x64, else float32)."""
  return jnp.asarray(x, dtype=jnp.result_type(float))


def require_num_classes(num_classes: int | None, name: str) -> int:
  if num_classes is None:
    raise EstimatorError(
        f"{name}: labels are traced (inside jit/vmap), so the class count cannot "
        f"be read from them; pass num_classes=C explicitly.")
  return int(num_classes)


def run_eager(fn: Callable[..., Any], *args: Any, **static: Any) -> np.ndarray:
  """Runs a jitted core in float64 and returns NumPy float64.

  Args:
    fn: a jitted function whose keyword arguments are static.
    *args: NumPy arrays (float arrays are cast to float64, ints kept) or keys.
    **static: static keyword arguments for ``fn``.

  Returns:
    ``np.float64`` scalar or a float64 array.
  """
  with jax.enable_x64(True):
    conv = []
    for a in args:
      if isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating):
        conv.append(jnp.asarray(a, dtype=jnp.float64))
      else:
        conv.append(a)
    out = np.asarray(fn(*conv, **static), dtype=np.float64)
  return out[()] if out.ndim == 0 else out


# ----------------------------------------------------------------------------
# Input checks (outside jit).
# ----------------------------------------------------------------------------


def check_labels(labels: Any, n: int, name: str, num_classes: int | None = None,
                 what: str = "features") -> tuple[np.ndarray, int]:
  """Checks integer labels 0..C-1 with every class present and C >= 2.

  Args:
    labels: `[n]` class indices.
    n: the number of rows the labels must match.
    name: metric name for the messages.
    num_classes: optional declared class count (must cover all labels).
    what: the name of the paired input, for the mismatch message.

  Returns:
    (labels as int32 `[n]`, num_classes).
  """
  y = np.asarray(labels)
  if y.ndim == 2 and y.shape[1] == 1:
    y = y[:, 0]
  if y.ndim != 1:
    raise EstimatorError(f"{name}: labels must be 1-D [n] class indices, got shape "
                         f"{y.shape}.")
  if y.shape[0] != n:
    raise EstimatorError(
        f"{name}: {what} have n={n} rows but labels has {y.shape[0]}; pass the "
        f"labels of exactly the images that produced the {what}.")
  if y.size and not np.issubdtype(y.dtype, np.integer):
    if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
      raise EstimatorError(f"{name}: labels must be integers 0..C-1 (got "
                           f"{y.dtype} with non-integer values).")
  y = y.astype(np.int64)
  if y.size and y.min() < 0:
    raise EstimatorError(f"{name}: labels must be >= 0 (got {y.min()}); remap with "
                         f"np.unique(labels, return_inverse=True).")
  present = np.unique(y)
  if present.size < 2:
    raise EstimatorError(
        f"{name}: needs at least 2 target classes, got {present.size} "
        f"(labels {present.tolist()}); a transferability score is undefined for "
        f"a one-class target.")
  c = int(y.max()) + 1 if num_classes is None else int(num_classes)
  if c <= y.max():
    raise EstimatorError(f"{name}: num_classes={c} but labels go up to {y.max()}.")
  if num_classes is None and present.size != c:
    missing = sorted(set(range(c)) - set(present.tolist()))
    raise EstimatorError(
        f"{name}: classes {missing} have no samples; labels must be contiguous "
        f"0..C-1 (remap with np.unique(labels, return_inverse=True)).")
  return y.astype(np.int32), c


def check_finite(x: np.ndarray, name: str, what: str) -> None:
  bad = ~np.isfinite(x)
  if bad.any():
    raise EstimatorError(
        f"{name}: {what} contain {int(bad.sum())} NaN/inf entries of {x.size}; "
        f"drop or impute those images (or fix the network producing them) "
        f"before scoring.")


def check_features(features: Any, labels: Any, name: str, *, stacked: bool = False,
                   num_classes: int | None = None, min_per_class: int = 1
                   ) -> tuple[np.ndarray, np.ndarray, int]:
  """Checks features `[n, d]` (or `[q, n, d]` when stacked) and labels `[n]`.

  Returns:
    (features float ndarray, labels int32 `[n]`, num_classes).
  """
  f = np.asarray(features)
  want = 3 if stacked else 2
  if f.ndim != want:
    shape = "[q, n, d]" if stacked else "[n, d]"
    raise EstimatorError(f"{name}: features must be {shape}, got shape {f.shape}.")
  if not (np.issubdtype(f.dtype, np.floating) or np.issubdtype(f.dtype, np.integer)):
    raise EstimatorError(f"{name}: features must be numeric, got {f.dtype}.")
  if not np.issubdtype(f.dtype, np.floating):
    f = f.astype(np.float64)
  n = f.shape[-2]
  if f.shape[-1] < 1:
    raise EstimatorError(f"{name}: features have no dimensions (shape {f.shape}).")
  y, c = check_labels(labels, n, name, num_classes)
  check_finite(f, name, "features")
  counts = np.bincount(y, minlength=c)
  if counts.min() < min_per_class:
    raise EstimatorError(
        f"{name}: every class needs at least {min_per_class} samples, class "
        f"{int(counts.argmin())} has {int(counts.min())}; score on more images.")
  return f, y, c


def check_probs(source_probs: Any, labels: Any, name: str, *, stacked: bool = False,
                num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
  """Checks source softmax outputs `[n, C_s]` (or `[q, n, C_s]`) and labels."""
  p = np.asarray(source_probs)
  want = 3 if stacked else 2
  if p.ndim != want:
    shape = "[q, n, C_s]" if stacked else "[n, C_s]"
    raise EstimatorError(f"{name}: source_probs must be {shape}, got {p.shape}.")
  p = p.astype(np.float64) if not np.issubdtype(p.dtype, np.floating) else p
  y, c = check_labels(labels, p.shape[-2], name, num_classes, what="source_probs")
  check_finite(p, name, "source_probs")
  if p.min() < -1e-6 or np.abs(p.sum(-1) - 1.0).max() > 1e-3:
    raise EstimatorError(
        f"{name}: source_probs rows must be probabilities (>= 0, summing to 1); "
        f"got min {p.min():.3g}, row sums in [{p.sum(-1).min():.4g}, "
        f"{p.sum(-1).max():.4g}]. Apply softmax to the source logits first.")
  return p, y, c


def check_predictions(source_predictions: Any, labels: Any, name: str, *,
                      stacked: bool = False, num_classes: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray, int, int]:
  """Checks hard source predictions `[n]` (or `[q, n]`) ints and labels.

  Returns:
    (predictions int32, labels int32, num target classes, num source classes).
  """
  z = np.asarray(source_predictions)
  want = 2 if stacked else 1
  if z.ndim != want:
    shape = "[q, n]" if stacked else "[n]"
    raise EstimatorError(
        f"{name}: source_predictions must be {shape} integer argmax labels, got "
        f"shape {z.shape} (for soft outputs [n, C_s] use leep, or take argmax).")
  if z.size and (not np.issubdtype(z.dtype, np.integer)):
    if not np.all(np.isfinite(z)) or np.any(z != np.round(z)):
      raise EstimatorError(f"{name}: source_predictions must be integer class ids.")
  z = z.astype(np.int64)
  if z.size and z.min() < 0:
    raise EstimatorError(f"{name}: source_predictions must be >= 0.")
  y, c = check_labels(labels, z.shape[-1], name, num_classes,
                      what="source_predictions")
  return z.astype(np.int32), y, c, int(z.max()) + 1


# ----------------------------------------------------------------------------
# Small shared JAX pieces.
# ----------------------------------------------------------------------------


def class_stats(x: jax.Array, labels: jax.Array, num_classes: int
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One-hot `[n, C]`, counts `[C]` and class means `[C, d]` of `x` `[n, d]`."""
  onehot = jax.nn.one_hot(labels, num_classes, dtype=x.dtype)
  counts = onehot.sum(0)
  means = (onehot.T @ x) / jnp.maximum(counts, 1)[:, None]
  return onehot, counts, means


def sym_pinv_trace(a: jax.Array, b: jax.Array, rcond: float | None) -> jax.Array:
  """``trace(pinv(a) @ b)`` for symmetric `a`, `b` `[d, d]` via ``eigh``.

  Equal to ``np.trace(np.linalg.pinv(a, rtol=rcond) @ b)``: for a symmetric
  matrix the singular values are the absolute eigenvalues, so the same
  eigenvalues are cut. ``rcond=None`` means ``10 * d * eps`` (jnp.linalg.pinv's
  default), which drops the round-off eigenvalues of a rank-deficient
  covariance (n < d) that ``rcond=1e-15`` would invert into huge numbers.
  """
  d = a.shape[-1]
  if rcond is None:
    rcond = 10.0 * d * jnp.finfo(a.dtype).eps
  w, v = jnp.linalg.eigh(a)
  aw = jnp.abs(w)
  keep = aw > rcond * aw.max()
  inv_w = jnp.where(keep, 1.0 / jnp.where(keep, w, 1.0), 0.0)
  # trace(V diag(1/w) V^T B) = sum_i (1/w_i) v_i^T B v_i.
  return jnp.sum(inv_w * jnp.sum(v * (b @ v), axis=0))


def gram_svd(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Thin SVD of `x` `[n, d]` from ``eigh`` of its smaller Gram matrix.

  ``eigh`` of a `[min(n,d)]^2` Gram matrix is several times faster than an SVD
  of `x` on CPU and GPU alike; it squares the condition number, which float64
  absorbs (thuml's LogME does the same when n > d).

  Returns:
    (u `[n, k]`, s `[k]` descending, valid `[k]` bool), k = min(n, d). ``valid``
    marks singular values above round-off: s^2 > 10 max(n, d) eps s_max^2 (the
    Gram's eigenvalues are accurate to about eps * s_max^2 only). Columns of
    ``u`` where ``valid`` is False are meaningless and must be masked.
  """
  n, d = x.shape
  if n >= d:
    w, v = jnp.linalg.eigh(x.T @ x)
  else:
    w, u = jnp.linalg.eigh(x @ x.T)
  w = jnp.maximum(w[::-1], 0.0)                         # descending, >= 0
  valid = w > 10.0 * max(n, d) * jnp.finfo(x.dtype).eps * w[0]
  s = jnp.sqrt(w)
  if n >= d:
    u = (x @ v[:, ::-1]) / jnp.where(valid, s, 1.0)
  else:
    u = u[:, ::-1]
  return jnp.where(valid, u, 0.0), s, valid


def pca_project(x: jax.Array, num_components: int) -> tuple[jax.Array, jax.Array]:
  """Centres `x` `[n, d]` and projects on its top principal components.

  Args:
    x: `[n, d]` features.
    num_components: static k <= min(n, d).

  Returns:
    (scores `[n, k]`, explained-variance ratio of all min(n, d) components).
    Component signs are arbitrary (as in any SVD); every metric that uses this
    is invariant to per-component sign flips.
  """
  xc = x - x.mean(0)
  u, s, valid = gram_svd(xc)
  s = jnp.where(valid, s, 0.0)
  var = s**2
  ratio = var / jnp.maximum(var.sum(), jnp.finfo(x.dtype).tiny)
  return u[:, :num_components] * s[:num_components], ratio
