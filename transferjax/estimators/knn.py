"""k-NN estimators of I(Y; F | T) for discrete Y: brute force, pure JAX.

The default is the class-aware Frenzel-Pompe estimator (Frenzel & Pompe 2007,
adapted to a discrete Y): FP in the joint space (Y, F, T) with points of other
classes infinitely far apart. For each sample i (counts exclude i itself):

  eps_i   = k_i-th smallest max(d_F(i,j), d_T(i,j)) over j with y_j = y_i
  n_ft(i) = #{j: max(d_F, d_T) < eps_i}                (all classes)
  n_yt(i) = #{j: y_j = y_i, d_T < eps_i}
  n_t(i)  = #{j: d_T < eps_i}
  I       = < psi(k_i) - psi(n_ft + 1) - psi(n_yt + 1) + psi(n_t + 1) >_i

With T absent this is exactly Ross (2014), i.e. scikit-learn's
`_compute_mi_cd` for 1-D features. Distances are brute force on row blocks of
`[B, n]`: eps_i is an entry of the same float matrix that is counted, so the
strict "<" is exact with no `eps - 1e-15` hack.

Ties: the k-NN counts assume distinct distances. With tied values (a
constant or binary feature, duplicated rows, saturated scores) the radius eps_i
is 0 or shared by many points, the strict "<" counts nothing and the estimate
is biased upward (for a constant X, Ross's I(Y; X) came out psi(k) - psi(1) =
1.5 nats for k = 3, above H(Y)). The standard remedy (Kraskov et al. 2004) is
to add tiny noise, which is what `jitter` does by default: 1e-4 times each
column's magnitude after standardizing, drawn from an explicit PRNG key
(default `jax.random.key(0)`, so results are reproducible). 1e-4, not less:
float32 values near 1 are spaced 1.2e-7 apart, so 1e-6 noise leaves ~10
distinct levels per tied value and most ties in place (measured: a binary X
independent of Y still gave 0.4 nats at 1e-6, 0.03 at 1e-5, ~0 at 1e-4).
It moves tie-free estimates only where two distances differ by < ~1e-4
(measured: continuous features, changes <= 0.001 nats).

Metric: "max" is the max-norm over all coordinates (canonical KSG/FP).
"euclidean" is the Euclidean norm within F and within T, combined by the max
across the two blocks (KSG allows any norm inside a block); the Euclidean
case works on squared distances, which leaves every comparison unchanged.
"""
from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from transferjax import backend
from transferjax.errors import EstimatorError
from transferjax.estimators import _checks

_METRICS = ("max", "euclidean")
_F_SCALES = ("rms", "none")
# Below this many columns the Euclidean distance is summed from exact
# differences; above it a HIGHEST-precision matmul is faster. The matmul form
# |a|^2 + |b|^2 - 2ab loses relative precision for near neighbours in low
# dimensions (cancellation), which is where exact differences are cheap.
_MATMUL_MIN_DIM = 16
# Auto row-block budget (entries of one [B, n] matrix). On CPU a block that
# stays in cache is ~2x faster than the full n x n matrix.
_CPU_BLOCK_ENTRIES = 1 << 21
_ACCEL_BLOCK_ENTRIES = 1 << 28


def _check_metric(metric: str) -> str:
  if metric not in _METRICS:
    raise EstimatorError(f"metric must be one of {_METRICS}, got {metric!r}.")
  return metric


def _standardize64(x: np.ndarray) -> np.ndarray:
  """z-scores every column of `[..., n, d]` in float64; constant columns -> 0."""
  x = np.asarray(x, np.float64)
  sd = x.std(axis=-2, keepdims=True)
  return (x - x.mean(axis=-2, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def scale_blocks(f, t, f_scale: str = "rms"):
  """Puts the F block on the scale of the T block (the recommended estimator).

  With every column z-scored, a Euclidean (or max) distance over a 200-d F is
  ~sqrt(200) times one over a 1-d T; every k-NN radius then exceeds the T
  distances, all T-counts cover the whole set and I(Y; F | T) collapses to the
  unconditioned I(Y; F) (measured: identical scores, docs/notes/first_hour.md).
  "rms" z-scores F and T and divides F by sqrt(number of non-constant F
  columns); "none" returns the inputs unchanged.

  Args:
    f: `[n, dF]` or stacked `[q, n, dF]` features (float).
    t: `[n, dT]` or None.
    f_scale: "rms" or "none".

  Returns:
    `(f, t, scaled)`: float32 arrays and whether they were scaled (then the
    kernel must not standardize again).
  """
  if f_scale not in _F_SCALES:
    raise EstimatorError(f"f_scale must be one of {_F_SCALES}, got {f_scale!r}.")
  if f_scale == "none":
    return f, t, False
  f = _standardize64(f)
  live = np.maximum((f.std(axis=-2) > 0).sum(-1), 1)  # non-constant F columns
  f = (f / np.sqrt(live)[..., None, None]).astype(np.float32)
  t = None if t is None else _standardize64(t).astype(np.float32)
  return f, t, True


def _scaled_inputs(f_, t_, f_scale: str, standardize: bool):
  """`scale_blocks` inside an estimator: returns `(f, t, standardize_in_kernel)`."""
  if f_scale == "rms" and not standardize:
    raise EstimatorError(
        "f_scale='rms' z-scores the columns before scaling F; with "
        "standardize=False pass f_scale='none' as well.")
  f_, t_, scaled = scale_blocks(f_, t_, f_scale)
  return f_, t_, bool(standardize) and not scaled


def _auto_block(n: int, row_block: Optional[int]) -> int:
  """Rows per block: `row_block`, or a memory budget chosen per backend."""
  if row_block is not None:
    if not isinstance(row_block, (int, np.integer)) or row_block < 1:
      raise EstimatorError(f"row_block must be a positive int or None, got "
                           f"{row_block!r}.")
    return int(min(row_block, n))
  budget = (_CPU_BLOCK_ENTRIES if backend.platform() == "cpu"
            else _ACCEL_BLOCK_ENTRIES)
  return int(max(1, min(n, budget // max(n, 1))))


def _pairwise(a, b, metric: str, precision):
  """Distance-like matrix `[B, n]` between rows of a `[B, d]` and b `[n, d]`.

  "max": max_j |a_j - b_j|. "euclidean": the squared Euclidean distance (a
  monotone transform, so all "<" comparisons and k-th neighbours agree).
  """
  if metric == "euclidean" and a.shape[1] >= _MATMUL_MIN_DIM:
    sq_a = jnp.sum(a * a, axis=1)
    sq_b = jnp.sum(b * b, axis=1)
    cross = jnp.matmul(a, b.T, precision=precision)
    return jnp.maximum(sq_a[:, None] + sq_b[None, :] - 2.0 * cross, 0.0)

  # A scan over columns keeps memory at one [B, n] matrix (no [B, n, d]).
  def body(acc, cols):
    ca, cb = cols
    diff = ca[:, None] - cb[None, :]
    if metric == "max":
      return jnp.maximum(acc, jnp.abs(diff)), None
    return acc + diff * diff, None

  init = jnp.zeros((a.shape[0], b.shape[0]), a.dtype)
  out, _ = lax.scan(body, init, (a.T, b.T))
  return out


def _prepare(x, key, jitter, standardize: bool, has_jitter: bool):
  """Standardizes columns (constant columns stay 0) and adds seeded jitter.

  The jitter's std is ``jitter * max(1, max |x|)`` per column: relative to
  the column's magnitude, so it stays far above float32 rounding (the spacing
  of float32 numbers near 10 is ~1e-6) and really separates tied values.
  """
  if standardize:
    mu = jnp.mean(x, axis=0)
    sd = jnp.std(x, axis=0)
    x = (x - mu) / jnp.where(sd > 0, sd, 1.0)
  if has_jitter:
    scale = jnp.maximum(1.0, jnp.max(jnp.abs(x), axis=0))
    x = x + jitter * scale * jax.random.normal(key, x.shape, x.dtype)
  return x


def _row_blocks(n: int, block: int):
  """Row indices `[nb, block]` padded with 0 to a multiple of `block`."""
  nb = -(-n // block)
  idx = jnp.arange(nb * block, dtype=jnp.int32)
  return jnp.where(idx < n, idx, 0).reshape(nb, block)


def _fp_discrete_local(y, f, t, *, k: int, metric: str, precision, block: int):
  """Per-sample class-aware FP terms `[n]` (inputs already prepared)."""
  n = f.shape[0]
  cols = jnp.arange(n, dtype=jnp.int32)

  def rows(idx):
    not_self = idx[:, None] != cols[None, :]
    same = (y[idx][:, None] == y[None, :]) & not_self
    d_f = _pairwise(f[idx], f, metric, precision)
    if t is None:
      d_t = jnp.zeros((), d_f.dtype)
      d_ft = d_f
    else:
      d_t = _pairwise(t[idx], t, metric, precision)
      d_ft = jnp.maximum(d_f, d_t)
    n_same = same.sum(axis=1)
    # Classes with <= k members use k_i = min(k, N_y - 1); singleton classes
    # were dropped before the kernel, so k_i >= 1.
    k_i = jnp.clip(n_same, 1, k)
    kk = min(k, n - 1)
    nearest = -lax.top_k(-jnp.where(same, d_ft, jnp.inf), kk)[0]  # ascending
    eps = jnp.take_along_axis(nearest, (k_i - 1)[:, None], axis=1)
    n_ft = ((d_ft < eps) & not_self).sum(axis=1)
    in_t = jnp.broadcast_to(d_t < eps, d_f.shape)
    n_yt = (in_t & same).sum(axis=1)
    n_t = (in_t & not_self).sum(axis=1)
    psi = jax.scipy.special.digamma
    fl = lambda c: c.astype(jnp.float32)
    return (psi(fl(k_i)) - psi(fl(n_ft) + 1.0) - psi(fl(n_yt) + 1.0)
            + psi(fl(n_t) + 1.0))

  local = lax.map(rows, _row_blocks(n, block))
  return local.reshape(-1)[:n]


@functools.partial(jax.jit, static_argnames=(
    "k", "metric", "standardize", "has_jitter", "precision", "block"))
def _cmi_knn_kernel(y, f, t, key, jitter, *, k, metric, standardize,
                    has_jitter, precision, block):
  kf, kt = jax.random.split(key)
  f = _prepare(f, kf, jitter, standardize, has_jitter)
  if t is not None:
    t = _prepare(t, kt, jitter, standardize, has_jitter)
  return _fp_discrete_local(y, f, t, k=k, metric=metric, precision=precision,
                            block=block)


# Default tie-breaking noise (after standardizing; module docstring, "Ties").
DEFAULT_JITTER = 1e-4


def _jitter_key(jitter, key):
  if not np.isfinite(jitter) or jitter < 0:
    raise EstimatorError(f"jitter must be a finite value >= 0, got {jitter!r}.")
  # A fixed default key: the same inputs always give the same estimate.
  return jax.random.key(0) if key is None else key


def cmi_knn(y, f, t=None, *, k: int = 3, metric: str = "max",
            standardize: bool = True, jitter: float = DEFAULT_JITTER, key=None,
            precision=lax.Precision.HIGHEST, row_block: Optional[int] = None,
            return_local: bool = False, f_scale: str = "rms"):
  """Class-aware Frenzel-Pompe estimate of I(Y; F | T) in nats.

  The ranking's estimator is `cmi_knn(y, f, t, metric="euclidean", key=key)`
  (what `experiments.rank` computes per source).

  Args:
    y: integer class labels `[n]`.
    f: source features `[n, dF]` (or `[n]`).
    t: conditioning target scores `[n, dT]` (or `[n]`); None (or a constant)
      gives Ross's I(Y; F).
    k: neighbours (3-5 usual). Classes with <= k members use
      k_i = min(k, N_y - 1); singleton classes are dropped (as scikit-learn).
    metric: "max" (max-norm everywhere) or "euclidean" (Euclidean within F
      and within T, max across the two blocks).
    standardize: z-score every column first (constant columns become 0).
    jitter: std of Gaussian noise added after standardizing, relative to each
      column's magnitude (default 1e-4; module docstring, "Ties"). 0 turns it
      off: then tied values (constant, binary or duplicated features) bias the
      estimate upward.
    key: PRNG key of the jitter (default `jax.random.key(0)`: deterministic).
    precision: matmul precision for the Euclidean distances (dims >= 16).
    row_block: rows per block (memory O(row_block * n)); None picks one by a
      memory budget. Exact for any value: every quantity is per row.
    return_local: also return the per-sample terms.
    f_scale: "rms" (default, recommended) puts the F block on T's scale
      (`scale_blocks`); without it a many-dimensional F swamps T and the
      estimate equals the unconditioned I(Y; F). "none": the canonical
      estimator on per-column standardized inputs.

  Returns:
    float32 scalar (nats; may be slightly negative: noise around 0, not
    clipped), or `(estimate, local [n])` where dropped singleton rows are NaN.
  """
  _check_metric(metric)
  key = _jitter_key(jitter, key)
  y_, f_, t_, keep = _checks.check_inputs(y, f, t, k=k)
  f_, t_, standardize = _scaled_inputs(f_, t_, f_scale, standardize)
  local = _cmi_knn_kernel(
      jnp.asarray(y_), jnp.asarray(f_), None if t_ is None else jnp.asarray(t_),
      key, jnp.float32(jitter), k=int(k), metric=metric,
      standardize=bool(standardize), has_jitter=bool(jitter > 0),
      precision=precision, block=_auto_block(y_.shape[0], row_block))
  est = jnp.mean(local)
  if not return_local:
    return est
  if keep is not None:
    local = jnp.full(keep.shape, jnp.nan, local.dtype).at[
        np.flatnonzero(keep)].set(local)
  return est, local


def mi_knn(y, x, **kw):
  """Ross (2014) estimate of I(Y; X) in nats (= `cmi_knn(y, x, None, **kw)`).

  With metric="euclidean" and 1-D x this is scikit-learn's `_compute_mi_cd`
  (which clips at 0; this does not).
  """
  return cmi_knn(y, x, None, **kw)


def cmi_knn_chain(y, f, t, *, key=None, **kw):
  """Chain-rule estimate mi_knn(y, [f, t]) - mi_knn(y, t) in nats.

  Similar mean to `cmi_knn` but higher variance (docs/notes/estimators.md);
  kept as a cross-check. Jitter keys for the two terms are split from `key`.
  """
  f2 = _checks.as_features(f, None, "f")
  t2 = _checks.as_features(t, None, "t")
  if f2.shape[0] != t2.shape[0]:
    raise EstimatorError(f"f has {f2.shape[0]} rows but t has {t2.shape[0]}; "
                         "pass one row per sample, in the same order.")
  k1 = k2 = None
  if key is not None:
    k1, k2 = jax.random.split(key)
  ft = np.concatenate([f2, t2], axis=1)
  return mi_knn(y, ft, key=k1, **kw) - mi_knn(y, t2, key=k2, **kw)


@functools.partial(jax.jit, static_argnames=(
    "k", "metric", "standardize", "has_jitter", "precision", "block",
    "batch_size"))
def _cmi_knn_many_kernel(y, fs, t, keys, jitter, *, k, metric, standardize,
                         has_jitter, precision, block, batch_size):
  def one(args):
    f, key = args
    return _cmi_knn_kernel(y, f, t, key, jitter, k=k, metric=metric,
                           standardize=standardize, has_jitter=has_jitter,
                           precision=precision, block=block)

  return lax.map(one, (fs, keys), batch_size=batch_size)  # [q, n] local terms


def cmi_knn_many(y, fs, t=None, *, k: int = 3, metric: str = "max",
                 standardize: bool = True, jitter: float = DEFAULT_JITTER, key=None,
                 precision=lax.Precision.HIGHEST,
                 row_block: Optional[int] = None, batch_size: int = 1,
                 f_scale: str = "rms", return_local: bool = False):
  """`cmi_knn` for q sources sharing (y, t): one compile, `lax.map` over q.

  Equals `[cmi_knn(y, fs[i], t, key=jax.random.fold_in(key, i), ...)]`.

  Args:
    y: class labels `[n]`.
    fs: stacked source features `[q, n, dF]` (use `reduce_dim` to give
      sources a common dF).
    t: conditioning scores `[n, dT]` or None.
    batch_size: sources per step; memory grows linearly with it (1 keeps the
      memory of one source, larger vectorizes over sources).
    f_scale: "rms" (default) scales each source's F block to T's scale, as
      the ranking does; see `cmi_knn`.
    return_local: also return the per-sample terms `[q, n]` (NaN for dropped
      singleton rows), e.g. to bootstrap the estimate over samples.
    Other arguments: as in `cmi_knn`.

  Returns:
    float32 `[q]`, nats, or `(estimates [q], local [q, n])`.
  """
  _check_metric(metric)
  key = _jitter_key(jitter, key)
  y_, fs_, t_, keep = _checks.check_inputs(y, fs, t, k=k, batched_f=True)
  fs_, t_, standardize = _scaled_inputs(fs_, t_, f_scale, standardize)
  q = fs_.shape[0]
  if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
    raise EstimatorError(f"batch_size must be a positive int, got "
                         f"{batch_size!r}.")
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(q))
  local = _cmi_knn_many_kernel(
      jnp.asarray(y_), jnp.asarray(fs_),
      None if t_ is None else jnp.asarray(t_), keys, jnp.float32(jitter),
      k=int(k), metric=metric, standardize=bool(standardize),
      has_jitter=bool(jitter > 0), precision=precision,
      block=_auto_block(y_.shape[0], row_block),
      batch_size=int(min(batch_size, q)))
  est = jnp.mean(local, axis=1)
  if not return_local:
    return est
  if keep is not None:
    local = jnp.full((q,) + keep.shape, jnp.nan, local.dtype).at[
        :, np.flatnonzero(keep)].set(local)
  return est, local


# ---------------------------------------------------------------------------
# Continuous Frenzel-Pompe I(X; Y | Z) (all variables continuous). Used for the
# jointly Gaussian anchors, and available as a general-purpose estimator.


@functools.partial(jax.jit, static_argnames=("k", "metric", "standardize",
                                             "precision", "block"))
def _fp_continuous_kernel(x, y, z, *, k, metric, standardize, precision,
                          block):
  prep = lambda a: _prepare(a, None, 0.0, standardize, False)
  x, y = prep(x), prep(y)
  z = None if z is None else prep(z)
  n = x.shape[0]
  cols = jnp.arange(n, dtype=jnp.int32)

  def rows(idx):
    not_self = idx[:, None] != cols[None, :]
    d_x = _pairwise(x[idx], x, metric, precision)
    d_y = _pairwise(y[idx], y, metric, precision)
    d_z = (jnp.zeros((), d_x.dtype) if z is None
           else _pairwise(z[idx], z, metric, precision))
    d_xz = jnp.maximum(d_x, d_z)
    d_yz = jnp.maximum(d_y, d_z)
    d_all = jnp.maximum(d_xz, d_y)
    nearest = -lax.top_k(-jnp.where(not_self, d_all, jnp.inf), k)[0]
    eps = nearest[:, k - 1:k]
    n_xz = ((d_xz < eps) & not_self).sum(1)
    n_yz = ((d_yz < eps) & not_self).sum(1)
    n_z = (jnp.broadcast_to(d_z < eps, d_x.shape) & not_self).sum(1)
    psi = jax.scipy.special.digamma
    fl = lambda c: c.astype(jnp.float32) + 1.0
    return (psi(jnp.float32(k)) - psi(fl(n_xz)) - psi(fl(n_yz))
            + psi(fl(n_z)))

  local = lax.map(rows, _row_blocks(n, block)).reshape(-1)[:n]
  return jnp.mean(local)


def cmi_fp(x, y, z=None, *, k: int = 3, metric: str = "max",
           standardize: bool = True, precision=lax.Precision.HIGHEST,
           row_block: Optional[int] = None):
  """Frenzel-Pompe I(X; Y | Z) in nats for continuous X, Y, Z (KSG-1 if no Z).

  Args:
    x: `[n, dx]`. y: `[n, dy]`. z: `[n, dz]` or None.
    k, metric, standardize, precision, row_block: as in `cmi_knn` ("euclidean"
      is Euclidean within each block, max across blocks).

  Returns:
    float32 scalar, nats.
  """
  _check_metric(metric)
  x = _checks.as_features(x, None, "x")
  n = x.shape[0]
  y = _checks.as_features(y, n, "y")
  z = None if z is None else _checks.as_features(z, n, "z")
  _checks.check_k(k, n)
  return _fp_continuous_kernel(
      jnp.asarray(x), jnp.asarray(y), None if z is None else jnp.asarray(z),
      k=int(k), metric=metric, standardize=bool(standardize),
      precision=precision, block=_auto_block(n, row_block))
