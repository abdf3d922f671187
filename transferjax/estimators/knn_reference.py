"""NumPy/SciPy (cKDTree, float64) reference of the class-aware FP estimator.

An independent implementation of `knn.cmi_knn` (same estimator, same
standardization, no jitter) used by the benchmark and the tests. KD-trees
count with "<=", so the strict "<" of FP is emulated with the radius
`nextafter(eps, 0)`, as scikit-learn does.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma


def _standardize(x: np.ndarray) -> np.ndarray:
  sd = x.std(axis=0)
  return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _prepare(y, f, t, standardize: bool):
  """float64 ``[n, d]`` blocks (``t`` None -> a constant column), without the
  samples whose class occurs once (they have no same-class neighbour), optionally
  z-scored. Returns ``(y [n'], f [n', d_f], t [n', d_t])``."""
  y = np.asarray(y).reshape(-1)
  f = np.asarray(f, np.float64).reshape(len(y), -1)
  t = (np.zeros((len(y), 1)) if t is None
       else np.asarray(t, np.float64).reshape(len(y), -1))
  _, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
  keep = counts[inv] > 1
  y, f, t = y[keep], f[keep], t[keep]
  if standardize:
    f, t = _standardize(f), _standardize(t)
  return y, f, t


def _block_dist(a: np.ndarray, b: np.ndarray, p: float) -> np.ndarray:
  """Distances from one point a `[d]` to rows of b `[m, d]`."""
  diff = np.abs(b - a[None, :])
  return diff.max(axis=1) if p == np.inf else np.sqrt((diff * diff).sum(1))


def cmi_knn_kdtree(y, f, t=None, *, k: int = 3, metric: str = "max",
                   standardize: bool = True) -> float:
  """Class-aware FP I(Y; F | T) in nats (float64, cKDTree).

  Args:
    y: int labels `[n]`; f: `[n, dF]`; t: `[n, dT]` or None.
    k: neighbours; classes with <= k members use min(k, N_y - 1), singleton
      classes are dropped (same rule as `cmi_knn`).
    metric: "max" (Chebyshev everywhere) or "euclidean" (Euclidean within F
      and within T, max across blocks).
    standardize: z-score columns first.

  Returns:
    The estimate (float, nats).
  """
  y, f, t = _prepare(y, f, t, standardize)
  n = len(y)
  p = np.inf if metric == "max" else 2.0

  eps = np.empty(n)
  k_all = np.empty(n)
  if metric == "max":
    joint = np.concatenate([f, t], axis=1)
    for c in np.unique(y):
      idx = np.flatnonzero(y == c)
      kc = min(k, len(idx) - 1)
      # k+1 neighbours include i itself at distance 0.
      d, _ = cKDTree(joint[idx]).query(joint[idx], k=kc + 1, p=np.inf)
      eps[idx] = d[:, -1]
      k_all[idx] = kc
    r = np.nextafter(eps, 0)
    n_ft = cKDTree(joint).query_ball_point(joint, r, p=np.inf,
                                           return_length=True) - 1
  else:
    # max(||dF||_2, ||dT||_2) is not a Minkowski norm, so no single tree
    # holds it: find candidates with an F-tree, then rescore them exactly.
    for c in np.unique(y):
      idx = np.flatnonzero(y == c)
      kc = min(k, len(idx) - 1)
      fc, tc = f[idx], t[idx]
      tree = cKDTree(fc)
      _, cand = tree.query(fc, k=kc + 1, p=2)
      cand = cand.reshape(len(idx), -1)
      for a in range(len(idx)):
        dm = np.maximum(_block_dist(fc[a], fc[cand[a]], p),
                        _block_dist(tc[a], tc[cand[a]], p))
        r_up = np.sort(dm)[kc]  # includes self at 0
        # Every point with mixed distance <= r_up has F-distance <= r_up.
        ball = np.asarray(tree.query_ball_point(fc[a], r_up * (1 + 1e-9), p=2))
        dm = np.maximum(_block_dist(fc[a], fc[ball], p),
                        _block_dist(tc[a], tc[ball], p))
        eps[idx[a]] = np.sort(dm)[kc]
      k_all[idx] = kc
    # Trees compare squared sums, which can round the k-th neighbour itself
    # across nextafter(eps); query a slightly larger ball and recount with
    # the same float64 formula that produced eps.
    n_ft = np.empty(n)
    n_t = np.empty(n)
    n_yt = np.empty(n)
    tree_f, tree_t = cKDTree(f), cKDTree(t)
    for i in range(n):
      grow = eps[i] * (1 + 1e-9)
      ball = np.asarray(tree_f.query_ball_point(f[i], grow, p=2), dtype=int)
      dm = np.maximum(_block_dist(f[i], f[ball], p),
                      _block_dist(t[i], t[ball], p))
      n_ft[i] = np.sum(dm < eps[i]) - 1
      ball = np.asarray(tree_t.query_ball_point(t[i], grow, p=2), dtype=int)
      inside = _block_dist(t[i], t[ball], p) < eps[i]
      n_t[i] = np.sum(inside) - 1
      n_yt[i] = np.sum(inside & (y[ball] == y[i])) - 1
  if metric == "max":
    r = np.nextafter(eps, 0)
    n_t = cKDTree(t).query_ball_point(t, r, p=p, return_length=True) - 1
    n_yt = np.empty(n)
    for c in np.unique(y):
      idx = np.flatnonzero(y == c)
      n_yt[idx] = cKDTree(t[idx]).query_ball_point(
          t[idx], r[idx], p=p, return_length=True) - 1
  # eps == 0 (exact duplicates): the "<=" of a tree at radius 0 still counts
  # the duplicates and self; strict "<" counts nothing.
  zero = eps <= 0
  n_ft = np.where(zero, 0, n_ft)
  n_yt = np.where(zero, 0, n_yt)
  n_t = np.where(zero, 0, n_t)
  return float(np.mean(digamma(k_all) - digamma(n_ft + 1) - digamma(n_yt + 1)
                       + digamma(n_t + 1)))


def cmi_knn_kdtree_many(y, fs, t=None, **kw) -> np.ndarray:
  """`cmi_knn_kdtree` for each source in `fs` `[q, n, dF]`; returns `[q]`."""
  return np.array([cmi_knn_kdtree(y, f, t, **kw) for f in np.asarray(fs)])


def cmi_knn_bruteforce(y, f, t: Optional[np.ndarray] = None, *, k: int = 3,
                       metric: str = "max", standardize: bool = True) -> float:
  """Plain float64 O(n^2) NumPy version (small n only): the definition."""
  y, f, t = _prepare(y, f, t, standardize)

  def dist(x):
    diff = np.abs(x[:, None, :] - x[None, :, :])
    return diff.max(-1) if metric == "max" else np.sqrt((diff ** 2).sum(-1))

  d_f, d_t = dist(f), dist(t)
  d_ft = np.maximum(d_f, d_t)
  n = len(y)
  eye = np.eye(n, dtype=bool)
  same = (y[:, None] == y[None, :]) & ~eye
  k_i = np.minimum(k, same.sum(1))
  srt = np.sort(np.where(same, d_ft, np.inf), axis=1)
  eps = srt[np.arange(n), k_i - 1][:, None]
  n_ft = ((d_ft < eps) & ~eye).sum(1)
  n_yt = ((d_t < eps) & same).sum(1)
  n_t = ((d_t < eps) & ~eye).sum(1)
  return float(np.mean(digamma(k_i) - digamma(n_ft + 1) - digamma(n_yt + 1)
                       + digamma(n_t + 1)))
