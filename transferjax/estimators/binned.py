"""Binned (plug-in) estimators, entropies and dimension reduction, pure JAX.

  I(Y; F~ | T~) = H(Y,T~) + H(F~,T~) - H(Y,F~,T~) - H(T~)

on discrete codes, counted with `jnp.bincount(length=static)`, optionally with
the Miller-Madow correction H_MM = H_ML + (m - 1) / (2n) (m: occupied cells).
F is reduced first (PCA then per-component equal-frequency bins, k-means
vector quantization, or per-column bins); T gets per-column equal-frequency
bins when dT <= 2 and k-means codes otherwise. Keep n / (C * B_F * B_T) >= 5-10:
the plug-in is biased upward when cells are undersampled (Miller 1955; Paninski 2003).
"""
from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from transferjax.errors import EstimatorError
from transferjax.estimators import _checks

_F_REDUCE = ("pca", "kmeans", "none")
_T_REDUCE = ("auto", "quantile", "kmeans")
_MAX_CELLS = 1 << 24
_KMEANS_ITERS = 30


# ------------------------------------------------------------------ entropies


def _entropy_from_counts(counts, n, miller_madow: bool):
  p = counts / n
  h = -jnp.sum(jax.scipy.special.xlogy(p, p))
  if miller_madow:
    h = h + (jnp.sum(counts > 0) - 1) / (2.0 * n)
  return h


def entropy_plugin(codes, n: int, *, miller_madow: bool = False):
  """Plug-in entropy (nats) of integer codes in `[0, n)`.

  Args:
    codes: int `[m]` samples.
    n: number of possible codes (static; the bincount length).
    miller_madow: add (occupied cells - 1) / (2m).

  Returns:
    float32 scalar.
  """
  codes = _check_codes(codes, n, "codes")
  return _entropy_kernel(jnp.asarray(codes), n=int(n),
                         miller_madow=bool(miller_madow))


@functools.partial(jax.jit, static_argnames=("n", "miller_madow"))
def _entropy_kernel(codes, *, n, miller_madow):
  counts = jnp.bincount(codes, length=n).astype(jnp.float32)
  return _entropy_from_counts(counts, codes.shape[0], miller_madow)


def _check_codes(codes, n, name):
  arr = np.asarray(codes)
  if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer)
                           or arr.dtype == bool):
    raise EstimatorError(f"{name} must be a 1-D integer array, got shape "
                         f"{arr.shape} dtype {arr.dtype}.")
  if not isinstance(n, (int, np.integer)) or n < 1:
    raise EstimatorError(f"the number of {name} values must be a positive "
                         f"int, got {n!r}.")
  if arr.size and (arr.min() < 0 or arr.max() >= n):
    raise EstimatorError(
        f"{name} must lie in [0, {n}), got range [{arr.min()}, {arr.max()}]; "
        "relabel with np.unique(..., return_inverse=True) or raise the count.")
  return arr.astype(np.int32)


def _plugin_cmi(y, fc, tc, n_y, n_f, n_t, miller_madow):
  """Plug-in I(Y; F | T) from codes (traced); shapes `[n]`.

  Summed cell by cell, sum p(y,f,t) [(log c_yft - log c_ft) + (log c_t -
  log c_yt)], rather than as a difference of four entropies: no cancellation
  of large float32 terms, and exactly 0 when Y is a function of T.
  """
  n = y.shape[0]
  joint = (y * n_f + fc) * n_t + tc
  c = jnp.bincount(joint, length=n_y * n_f * n_t).astype(jnp.float32)
  c = c.reshape(n_y, n_f, n_t)
  c_yt = c.sum(1)[:, None, :]
  c_ft = c.sum(0)[None, :, :]
  c_t = c.sum((0, 1))[None, None, :]
  safe = lambda a: jnp.log(jnp.where(c > 0, a, 1.0))
  terms = (safe(c) - safe(c_ft)) + (safe(c_t) - safe(c_yt))
  cmi = jnp.sum(jnp.where(c > 0, c * terms, 0.0)) / n
  if miller_madow:
    occupied = lambda a: jnp.sum(a > 0)
    cells = (occupied(c_yt) + occupied(c_ft) - occupied(c) - occupied(c_t))
    cmi = cmi + cells / (2.0 * n)
  return cmi


@functools.partial(jax.jit, static_argnames=("n_y", "n_f", "n_t",
                                             "miller_madow"))
def _plugin_kernel(y, fc, tc, *, n_y, n_f, n_t, miller_madow):
  return _plugin_cmi(y, fc, tc, n_y, n_f, n_t, miller_madow)


def cmi_plugin_codes(y, f_code, t_code, *, n_y: int, n_f: int, n_t: int,
                     miller_madow: bool = True):
  """Exact plug-in I(Y; F | T) (nats) for discrete codes.

  Args:
    y: int `[n]` in `[0, n_y)`.
    f_code: int `[n]` in `[0, n_f)`.
    t_code: int `[n]` in `[0, n_t)` (all zeros gives I(Y; F)).
    n_y, n_f, n_t: numbers of possible codes (static).
    miller_madow: apply the MM correction to every entropy term.

  Returns:
    float32 scalar.
  """
  y = _check_codes(y, n_y, "y")
  f_code = _check_codes(f_code, n_f, "f_code")
  t_code = _check_codes(t_code, n_t, "t_code")
  if not y.shape == f_code.shape == t_code.shape:
    raise EstimatorError(f"y, f_code, t_code lengths differ: {y.shape[0]}, "
                         f"{f_code.shape[0]}, {t_code.shape[0]}.")
  _check_cells(n_y * n_f * n_t, y.shape[0], warn=False)
  return _plugin_kernel(jnp.asarray(y), jnp.asarray(f_code),
                        jnp.asarray(t_code), n_y=int(n_y), n_f=int(n_f),
                        n_t=int(n_t), miller_madow=bool(miller_madow))


def _check_cells(cells: int, n: int, warn: bool = True):
  if cells > _MAX_CELLS:
    raise EstimatorError(
        f"{cells} joint cells is too many to count (max {_MAX_CELLS}); use "
        "fewer bins or components (e.g. f_reduce='pca', n_components=1).")
  if warn and cells * 5 > n:
    warnings.warn(
        f"{cells} joint cells for {n} samples (< 5 per cell): the plug-in CMI "
        "is biased upward even with Miller-Madow; use fewer bins.",
        stacklevel=3)


# ------------------------------------------------------------------ codes


def _quantile_codes(x, bins: int):
  """Equal-frequency codes `[n]` in `[0, bins)` of one column `[n]`.

  Edges are order statistics, and tied values always share a code, so the
  codes do not depend on the sample order.
  """
  n = x.shape[0]
  srt = jnp.sort(x)
  edges = srt[(jnp.arange(1, bins) * n) // bins]
  return jnp.searchsorted(edges, x, side="right").astype(jnp.int32)


def _columns_code(x, bins: int):
  """Mixed-radix code of per-column quantile bins: `[n, p]` -> `[n]`."""
  code = jnp.zeros(x.shape[0], jnp.int32)
  for j in range(x.shape[1]):  # p is small and static
    code = code * bins + _quantile_codes(x[:, j], bins)
  return code


def _standardize(x):
  sd = jnp.std(x, axis=0)
  return (x - jnp.mean(x, axis=0)) / jnp.where(sd > 0, sd, 1.0)


def _pca(x, p: int):
  """Scores `[n, p]` on the top-p principal components (zero-padded)."""
  xc = x - jnp.mean(x, axis=0)
  u, s, _ = jnp.linalg.svd(xc, full_matrices=False)
  scores = u[:, :p] * s[:p]
  if scores.shape[1] < p:  # fewer columns than p: pad with constant zeros
    scores = jnp.pad(scores, ((0, 0), (0, p - scores.shape[1])))
  return scores


def _kmeans_codes(x, n_clusters: int, key, iters: int = _KMEANS_ITERS):
  """Lloyd's k-means codes `[n]` (standardized x, seeded init from rows)."""
  x = _standardize(x)
  n = x.shape[0]
  init = jax.random.choice(key, n, (n_clusters,), replace=False)
  centers = x[init]

  def assign(c):
    d = (jnp.sum(x * x, 1)[:, None] + jnp.sum(c * c, 1)[None, :]
         - 2.0 * jnp.matmul(x, c.T, precision=lax.Precision.HIGHEST))
    return jnp.argmin(d, axis=1).astype(jnp.int32)

  def step(_, c):
    a = assign(c)
    sums = jax.ops.segment_sum(x, a, num_segments=n_clusters)
    cnt = jax.ops.segment_sum(jnp.ones(n), a, num_segments=n_clusters)
    # An empty cluster keeps its old center instead of becoming NaN.
    return jnp.where(cnt[:, None] > 0, sums / jnp.maximum(cnt, 1)[:, None], c)

  centers = lax.fori_loop(0, iters, step, centers)
  return assign(centers)


def _f_codes(f, key, *, bins_f, f_reduce, n_components):
  if f_reduce == "pca":
    return _columns_code(_pca(_standardize(f), n_components), bins_f)
  if f_reduce == "kmeans":
    return _kmeans_codes(f, bins_f, key)
  return _columns_code(f, bins_f)


def _n_f(bins_f, f_reduce, n_components, d):
  if f_reduce == "pca":
    return bins_f ** n_components
  if f_reduce == "kmeans":
    return bins_f
  return bins_f ** d


def _t_mode(t_reduce: str, d_t: int) -> str:
  if t_reduce == "auto":
    return "quantile" if d_t <= 2 else "kmeans"
  return t_reduce


def _t_codes(t, key, *, bins_t, mode):
  if t is None:
    return None
  if mode == "quantile":
    return _columns_code(t, bins_t)
  return _kmeans_codes(t, bins_t, key)


def _n_t(t, bins_t, mode):
  if t is None:
    return 1
  return bins_t ** t.shape[1] if mode == "quantile" else bins_t


def _check_bins(**kw):
  for name, v in kw.items():
    if not isinstance(v, (int, np.integer)) or v < 1:
      raise EstimatorError(f"{name} must be a positive int, got {v!r}.")


# ------------------------------------------------------------------ binned CMI


@functools.partial(jax.jit, static_argnames=(
    "n_y", "bins_f", "bins_t", "f_reduce", "n_components", "t_mode",
    "miller_madow", "n_f", "n_t"))
def _binned_many_kernel(y, fs, t, key, *, n_y, bins_f, bins_t, f_reduce,
                        n_components, t_mode, miller_madow, n_f, n_t):
  kf, kt = jax.random.split(key)
  tc = _t_codes(t, kt, bins_t=bins_t, mode=t_mode)
  if tc is None:
    tc = jnp.zeros(y.shape[0], jnp.int32)

  def one(f):
    fc = _f_codes(f, kf, bins_f=bins_f, f_reduce=f_reduce,
                  n_components=n_components)
    return _plugin_cmi(y, fc, tc, n_y, n_f, n_t, miller_madow)

  return lax.map(one, fs)


def cmi_binned_many(y, fs, t=None, *, bins_f: int = 4, bins_t: int = 4,
                    f_reduce: str = "pca", n_components: int = 1,
                    t_reduce: str = "auto", miller_madow: bool = True,
                    key=None):
  """`cmi_binned` for q sources `fs` `[q, n, dF]` sharing y, t; returns `[q]`.

  T codes are computed once; every source uses the same k-means key.
  """
  if f_reduce not in _F_REDUCE:
    raise EstimatorError(f"f_reduce must be one of {_F_REDUCE}, got "
                         f"{f_reduce!r}.")
  if t_reduce not in _T_REDUCE:
    raise EstimatorError(f"t_reduce must be one of {_T_REDUCE}, got "
                         f"{t_reduce!r}.")
  _check_bins(bins_f=bins_f, bins_t=bins_t, n_components=n_components)
  y, fs, t, _ = _checks.check_inputs(y, fs, t, batched_f=True, knn=False)
  _, y = np.unique(y, return_inverse=True)
  n_y = int(y.max()) + 1
  t_mode = _t_mode(t_reduce, 0 if t is None else t.shape[1])
  n_f = _n_f(bins_f, f_reduce, n_components, fs.shape[2])
  n_t = _n_t(t, bins_t, t_mode)
  _check_cells(n_y * n_f * n_t, y.shape[0])
  key = jax.random.key(0) if key is None else key
  return _binned_many_kernel(
      jnp.asarray(y, jnp.int32), jnp.asarray(fs),
      None if t is None else jnp.asarray(t), key, n_y=n_y, bins_f=int(bins_f),
      bins_t=int(bins_t), f_reduce=f_reduce, n_components=int(n_components),
      t_mode=t_mode, miller_madow=bool(miller_madow), n_f=n_f, n_t=n_t)


def cmi_binned(y, f, t=None, *, bins_f: int = 4, bins_t: int = 4,
               f_reduce: str = "pca", n_components: int = 1,
               t_reduce: str = "auto", miller_madow: bool = True, key=None):
  """Binned plug-in I(Y; F~ | T~) in nats.

  Args:
    y: class labels `[n]` (any integers; relabelled to 0..C-1).
    f: features `[n, dF]`.
    t: conditioning scores `[n, dT]`, or None for I(Y; F~).
    bins_f: bins per PCA component ("pca"), clusters ("kmeans") or bins per
      column ("none": bins_f ** dF cells, small dF only).
    bins_t: bins per T column (quantile, dT <= 2) or k-means clusters.
    f_reduce: "pca" (standardize, PCA to `n_components`, equal-frequency bins;
      strong when the class signal lies on the top PCs, blind otherwise),
      "kmeans" (vector quantization) or "none".
    n_components: PCA components (cells: bins_f ** n_components).
    t_reduce: "auto" (quantile if dT <= 2 else k-means), "quantile", "kmeans".
    miller_madow: Miller-Madow correction of every entropy term.
    key: PRNG key for k-means initialization (default key(0): deterministic).

  Returns:
    float32 scalar.
  """
  f2 = _checks.as_features(f, None, "f")
  return cmi_binned_many(y, f2[None], t, bins_f=bins_f, bins_t=bins_t,
                         f_reduce=f_reduce, n_components=n_components,
                         t_reduce=t_reduce, miller_madow=miller_madow,
                         key=key)[0]


def t_codes(t, *, bins_t: int = 4, t_reduce: str = "auto", key=None):
  """Discrete codes `[n]` of T (as in `cmi_binned`) and their count.

  Returns:
    (codes int32 `[n]`, number of possible codes).
  """
  t = _checks.as_features(t, None, "t")
  _check_bins(bins_t=bins_t)
  if t_reduce not in _T_REDUCE:
    raise EstimatorError(f"t_reduce must be one of {_T_REDUCE}, got "
                         f"{t_reduce!r}.")
  mode = _t_mode(t_reduce, t.shape[1])
  key = jax.random.key(0) if key is None else key
  codes = jax.jit(functools.partial(_t_codes, bins_t=int(bins_t), mode=mode))(
      jnp.asarray(t), key)
  return codes, _n_t(t, bins_t, mode)


def conditional_entropy_y_given_t(y, t, *, method: str = "binned",
                                  bins_t: int = 4, t_reduce: str = "auto",
                                  miller_madow: bool = False, k: int = 3,
                                  metric: str = "max", key=None):
  """H(Y | T) in nats: the upper bound gamma_max of I(Y; F | T).

  Args:
    y: class labels `[n]`.
    t: target scores `[n, dT]`.
    method: "binned": plug-in H(Y, T~) - H(T~) on the same T codes as
      `cmi_binned` (then the plug-in I(Y; F~ | T~) <= H(Y | T~) exactly, so
      use this bound with binned scores). "knn": H_plugin(Y) - mi_knn(y, t)
      (Ross), the bound matching `cmi_knn` via the chain rule
      I(Y; F | T) = I(Y; F, T) - I(Y; T) <= H(Y) - I(Y; T).
    bins_t, t_reduce: T codes for "binned".
    miller_madow: MM correction of the plug-in entropies.
    k, metric: for "knn".
    key: PRNG key for k-means T codes ("binned") or the tie-breaking jitter
      of `mi_knn` ("knn").

  Returns:
    float32 scalar.
  """
  y_arr = _checks.as_labels(y)
  _checks.check_classes(y_arr)
  _, yc = np.unique(y_arr, return_inverse=True)
  n_y = int(yc.max()) + 1
  if method == "knn":
    from transferjax.estimators.knn import mi_knn  # avoid an import cycle
    h_y = entropy_plugin(yc, n_y, miller_madow=miller_madow)
    # Jitter on (mi_knn's default): a tied or constant T must not push the
    # bound below 0 (a constant T gave H(Y|T) = H(Y) - 1.5 nats without it).
    return h_y - mi_knn(y_arr, t, k=k, metric=metric, key=key)
  if method != "binned":
    raise EstimatorError(f"method must be 'binned' or 'knn', got {method!r}.")
  t = _checks.as_features(t, y_arr.shape[0], "t")
  tc, n_t = t_codes(t, bins_t=bins_t, t_reduce=t_reduce, key=key)
  # H(Y | T~) = I(Y; Y | T~): plug-in CMI with F~ = Y.
  return _plugin_kernel(jnp.asarray(yc, jnp.int32), jnp.asarray(yc, jnp.int32),
                        tc, n_y=n_y, n_f=n_y, n_t=n_t,
                        miller_madow=bool(miller_madow))


# ------------------------------------------------------------------ reduce_dim


@functools.partial(jax.jit, static_argnames=("p", "method", "standardize"))
def _reduce_kernel(f, *, p, method, standardize):
  del method  # "pca" is the only method (checked by the caller)
  def one(x):
    x = _standardize(x) if standardize else x
    return _pca(x, p)
  return lax.map(one, f)


def reduce_dim(f, p: int, *, method: str = "pca", standardize: bool = True):
  """Projects every source onto its top-p principal components.

  High-dimensional k-NN estimates are biased low by an amount that grows with
  dF (docs/notes/estimators.md), so sources are compared on one common p.

  Args:
    f: features `[n, d]` or `[q, n, d]`.
    p: output dimension; sources with d < p are zero-padded (constant
      columns add no distance and no information).
    method: "pca" (SVD of the centered, optionally standardized features).
    standardize: z-score columns before PCA (scale-free components).

  Returns:
    float32 `[n, p]` or `[q, n, p]`.
  """
  if method != "pca":
    raise EstimatorError(f"method must be 'pca', got {method!r}.")
  _check_bins(p=p)
  arr = np.asarray(f)
  batched = arr.ndim == 3
  arr = _checks.as_features(arr, None, "f", batched=batched)
  out = _reduce_kernel(jnp.asarray(arr if batched else arr[None]), p=int(p),
                       method=method, standardize=bool(standardize))
  return out if batched else out[0]
