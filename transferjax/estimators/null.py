"""Permutation null of I(Y; F | T): the bias of an estimator where CMI = 0."""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from transferjax.errors import EstimatorError
from transferjax.estimators import _checks
from transferjax.estimators.binned import t_codes
from transferjax.estimators import knn as _knn


@jax.jit
def _permute_within(y, groups, key):
  """Shuffles y inside each group: `[n]` -> `[n]`.

  Two independent random orders that both sort by group list every group's
  members in the same slots, so mapping one onto the other permutes y only
  within groups.
  """
  k1, k2 = jax.random.split(key)
  o1 = jnp.lexsort((jax.random.uniform(k1, y.shape), groups))
  o2 = jnp.lexsort((jax.random.uniform(k2, y.shape), groups))
  return jnp.zeros_like(y).at[o2].set(y[o1])


def permute_within_t_bins(y, t, key, *, bins_t: int = 4,
                          t_reduce: str = "auto"):
  """y permuted within the T bins of `cmi_binned` (keeps p(y, t~)).

  Args:
    y: class labels `[n]`; t: `[n, dT]` or None (plain permutation).
    key: PRNG key.

  Returns:
    int32 `[n]`.
  """
  y = _checks.as_labels(y)
  if t is None:
    groups = jnp.zeros(y.shape, jnp.int32)
  else:
    groups, _ = t_codes(t, bins_t=bins_t, t_reduce=t_reduce, key=key)
  return _permute_within(jnp.asarray(y), groups, jax.random.fold_in(key, 1))


@functools.partial(jax.jit, static_argnames=("k_perm", "block"))
def _t_neighbours(t, *, k_perm, block):
  """Indices `[n, k_perm]` of each sample's nearest T-neighbours (max-norm)."""
  t = _knn._prepare(t, None, 0.0, True, False)
  n = t.shape[0]
  cols = jnp.arange(n, dtype=jnp.int32)

  def rows(idx):
    d = _knn._pairwise(t[idx], t, "max", None)
    d = jnp.where(idx[:, None] == cols[None, :], jnp.inf, d)
    return lax.top_k(-d, k_perm)[1]

  out = lax.map(rows, _knn._row_blocks(n, block))
  return out.reshape(n, k_perm)[:n]


@jax.jit
def _local_draw(y, nbrs, key):
  """y[j] for j drawn uniformly from each sample's T-neighbours: `[n]`."""
  pick = jax.random.randint(key, y.shape, 0, nbrs.shape[1])
  return y[jnp.take_along_axis(nbrs, pick[:, None], axis=1)[:, 0]]


def null_cmi(estimator: Callable, y, f, t, key, *, n_perm: int = 20,
             method: str = "local", k_perm: int = 5, bins_t: int = 4,
             t_reduce: str = "auto", return_all: bool = False):
  """Mean of `estimator` on surrogate labels with I(Y; F | T) = 0.

  Callers subtract it (gamma - null) to remove the estimator's bias under a
  null that keeps the data's p(y, t) and p(f, t). Two surrogates:

  - "local" (default; in the spirit of Runge 2018's local permutation): each
    y_i is replaced by the label of one of its `k_perm` nearest neighbours in
    T (max-norm, standardized; drawn with replacement), keeping p(y | t)
    locally.
  - "tbins": y permuted within the T bins of `cmi_binned` (exact label
    counts per bin); the natural null for the binned estimator.

  Neither reproduces the upward k-NN bias when T determines Y exactly
  (docs/notes/estimators.md): there the only surrogate that keeps p(y | t) is y
  itself, and relabelling the ~6% of points near class boundaries already
  removes the bias (measured: 0.158 -> -0.008 at n=400).

  Args:
    estimator: callable `(y, f, t) -> scalar`, e.g.
      `functools.partial(cmi_knn, k=3)`.
    y, f, t: as for the estimator (t may be None only for "tbins").
    key: PRNG key; surrogate i uses `fold_in(key, i)`.
    n_perm: number of surrogates.
    method: "local" or "tbins".
    k_perm: neighbours for "local".
    bins_t, t_reduce: T bins for "tbins".
    return_all: also return all `[n_perm]` null values.

  Returns:
    float32 scalar mean null, or `(mean, values [n_perm])`.
  """
  if not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
    raise EstimatorError(f"n_perm must be a positive int, got {n_perm!r}.")
  if method not in ("local", "tbins"):
    raise EstimatorError(f"method must be 'local' or 'tbins', got {method!r}.")
  y = _checks.as_labels(y)
  yj = jnp.asarray(y)
  n = y.shape[0]
  if t is not None:
    t = _checks.as_features(t, n, "t")
  if method == "local":
    if t is None:
      raise EstimatorError("method='local' needs t; use method='tbins' for a "
                           "plain permutation when there is no T.")
    if not isinstance(k_perm, (int, np.integer)) or not 1 <= k_perm < n:
      raise EstimatorError(f"k_perm must be an int in [1, n), got {k_perm!r}.")
    nbrs = _t_neighbours(jnp.asarray(t), k_perm=int(k_perm),
                         block=_knn._auto_block(n, None))
    draw = lambda i: _local_draw(yj, nbrs, jax.random.fold_in(key, i))
  else:
    groups = (jnp.zeros(y.shape, jnp.int32) if t is None else
              t_codes(t, bins_t=bins_t, t_reduce=t_reduce, key=key)[0])
    draw = lambda i: _permute_within(yj, groups, jax.random.fold_in(key, i))
  # One Python call per surrogate: estimators validate concrete inputs
  # outside jit, and their jitted kernels are reused (same shapes).
  vals = jnp.stack([jnp.asarray(estimator(np.asarray(draw(i)), f, t))
                    for i in range(n_perm)])
  mean = jnp.mean(vals)
  return (mean, vals) if return_all else mean
