"""Choose several sources at once: greedy forward selection by conditional gain.

The paper's score of one source is ``I(Y; F_i | T)``. For a set ``S`` of sources
the quantity to maximize is ``I(Y; F_S | T)``; by the chain rule it grows one
source at a time by the conditional gain

  ``I(Y; F_S+j | T) - I(Y; F_S | T) = I(Y; F_j | T, F_S)``,

so greedy forward selection adds, at each step, the source with the largest
gain given everything chosen so far. Two copies of one source have the same
single-source score, but the second adds nothing once the first is in
(``I(Y; F_a | T, F_a) = 0``); a source that is decisive on a part of the data
the chosen ones do not cover adds a lot.

The gains are the class-aware Frenzel-Pompe k-NN CMI (``cmi_knn_many``) with
the conditioning block ``Z = (T, F_S)``. Blocks are put on one scale, the same
reasoning as ``RankConfig.f_scale="rms"``: every source block is standardized
and divided by ``sqrt(d)`` (its Euclidean distance becomes an RMS distance, on
the scale of a distance in the standardized T), and the conditioning block,
made of ``1 + |S|`` such blocks, is divided by ``sqrt(1 + |S|)`` so its distance
is the RMS of its blocks' distances. Without the second step the conditioning
distance grows like ``sqrt(1 + |S|)``, sets every k-NN radius alone and the
gain collapses towards 0 for every candidate. With ``S`` empty the gain is
exactly the single-source ranking score.

Stopping rule: at each step the best gain is compared with the same maximum
over candidates on surrogate labels drawn from each sample's nearest
neighbours in ``Z`` (a local permutation that keeps ``p(y | t, f_S)``, so the
surrogate gain of every candidate is 0 in truth); the selection stops when the
best gain is within the ``1 - alpha`` quantile of that null, or not above 0.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from transferjax import estimators as est
from transferjax.estimators.knn import DEFAULT_JITTER
from transferjax.errors import ConfigError, EstimatorError


def scale_block(x: np.ndarray) -> np.ndarray:
  """``[..., n, d]`` -> z-scored columns divided by ``sqrt(#non-constant columns)``.

  The ``f_scale="rms"`` rule of the ranking: a Euclidean distance in the block
  becomes an RMS distance over its live coordinates.
  """
  x = np.asarray(x, np.float64)
  sd = x.std(axis=-2, keepdims=True)
  z = (x - x.mean(axis=-2, keepdims=True)) / np.where(sd > 0, sd, 1.0)
  live = np.maximum((sd > 0).sum(axis=-1, keepdims=True), 1)
  return (z / np.sqrt(live)).astype(np.float32)


def _standardize(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  sd = x.std(axis=0, keepdims=True)
  return ((x - x.mean(axis=0, keepdims=True)) / np.where(sd > 0, sd, 1.0)
          ).astype(np.float32)


def conditioning_block(t: np.ndarray, scaled: np.ndarray,
                       chosen: Sequence[int]) -> np.ndarray:
  """``Z = (T, F_S)`` on one scale: ``[n, d_t + |S| d]``.

  Args:
    t: ``[n, d_t]`` target-net scores (standardized here, as in the ranking).
    scaled: ``[q, n, d]`` source blocks already through ``scale_block``.
    chosen: indices of ``S``.
  """
  parts = [_standardize(t)] + [scaled[j] for j in chosen]
  return (np.concatenate(parts, axis=1) / np.sqrt(len(parts))).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("k_perm",))
def _local_surrogates(y, z, keys, *, k_perm):
  """``[P, n]`` labels: each y_i replaced by the label of one of its k_perm
  nearest neighbours in z (Euclidean), drawn independently per surrogate."""
  sq = jnp.sum(z * z, axis=1)
  d = sq[:, None] + sq[None, :] - 2.0 * jnp.matmul(z, z.T, precision="highest")
  d = jnp.where(jnp.eye(z.shape[0], dtype=bool), jnp.inf, d)
  nbrs = jax.lax.top_k(-d, k_perm)[1]                               # [n, k_perm]

  def draw(key):
    pick = jax.random.randint(key, y.shape, 0, k_perm)
    return y[jnp.take_along_axis(nbrs, pick[:, None], axis=1)[:, 0]]

  return jax.vmap(draw)(keys)


@dataclasses.dataclass(frozen=True)
class GreedyResult:
  """What ``greedy_select`` found.

  Attributes:
    selected: the ``k`` chosen source indices, in the order picked.
    gains: ``[k]`` conditional gain ``I(Y; F_j | T, F_S)`` of each pick (nats).
    null_quantiles: ``[k]`` the ``1 - alpha`` quantile of the null of the best
      gain at each step (NaN when ``n_perm=0``).
    num_significant: picks made before the stopping rule first fired (the
      stopped set is ``selected[:num_significant]``; ``k`` if it never fired).
    candidate_gains: ``[k, q]`` every candidate's gain at each step (chosen
      ones NaN).
  """
  selected: list
  gains: np.ndarray
  null_quantiles: np.ndarray
  num_significant: int
  candidate_gains: np.ndarray


def greedy_select(y, features, t, *, k: int, k_nn: int = 3, jitter: float = DEFAULT_JITTER,
                  key: jax.Array | None = None, n_perm: int = 20,
                  alpha: float = 0.05, k_perm: int = 5) -> GreedyResult:
  """Greedy forward selection of ``k`` sources maximizing ``I(Y; F_S | T)``.

  Args:
    y: ``[n]`` target labels.
    features: ``[q, n, d]`` source features on the scoring set.
    t: ``[n, d_t]`` target-net scores (``[n]`` allowed).
    k: sources to pick (``1 <= k <= q``).
    k_nn: neighbours of the CMI estimator.
    jitter, key: seeded tie-breaking noise (as in the ranking).
    n_perm: surrogates of the stopping rule's null (0: no null).
    alpha: the rule stops when the best gain <= max(0, the ``1 - alpha`` null
      quantile).
    k_perm: neighbours in ``Z`` a surrogate label is drawn from.

  Returns:
    A ``GreedyResult``. Step 1's gains equal the single-source score
    ``cmi_knn`` with ``f_scale="rms"`` and the same key.
  """
  feats = np.asarray(features)
  if feats.ndim != 3:
    raise EstimatorError(f"features must be [q, n, d] (sources x scoring rows x "
                         f"dims), got shape {feats.shape}.")
  q, n, _ = feats.shape
  if not 1 <= int(k) <= q:
    raise ConfigError(f"k must be in 1..{q} (the number of sources), got {k}.")
  if not 0.0 < alpha < 1.0:
    raise ConfigError(f"alpha must be in (0, 1), got {alpha}.")
  t = np.asarray(t, np.float32).reshape(n, -1)
  y = np.asarray(y)
  key = jax.random.key(0) if key is None else key
  scaled = scale_block(feats)
  # The blocks are already on one scale (scale_block): the estimator must not rescale.
  kw = dict(k=k_nn, metric="euclidean", jitter=jitter, standardize=False,
            f_scale="none")
  chosen: list[int] = []
  gains, quants, cand = [], [], []
  num_significant = None
  for step in range(int(k)):
    z = conditioning_block(t, scaled, chosen)
    g = np.asarray(est.cmi_knn_many(y, scaled, z, key=key, **kw), np.float64)
    g[chosen] = np.nan
    best = int(np.nanargmax(g))
    qv = np.nan
    if n_perm > 0:
      pkeys = jax.random.split(jax.random.fold_in(key, 7919 + step), n_perm)
      ys = np.asarray(_local_surrogates(jnp.asarray(y), jnp.asarray(z), pkeys,
                                        k_perm=int(min(k_perm, n - 1))))
      null_max = []
      for p in range(n_perm):
        if np.bincount(ys[p]).min(initial=n) == 0 or len(np.unique(ys[p])) < 2:
          continue
        try:
          v = np.array(est.cmi_knn_many(ys[p], scaled, z, key=key, **kw), np.float64)
        except EstimatorError:  # a surrogate class too small for the k-NN
          continue
        v[chosen] = -np.inf
        null_max.append(float(np.max(v)))
      qv = float(np.quantile(null_max, 1.0 - alpha)) if null_max else np.nan
      # A gain at or below 0 is no information whatever the null says (the
      # null's quantile is negative where conditioning on more blocks biases
      # every estimate down).
      if num_significant is None and not g[best] > max(qv, 0.0):
        num_significant = step
    chosen.append(best)
    gains.append(float(g[best]))
    quants.append(qv)
    cand.append(g)
  return GreedyResult(selected=chosen, gains=np.asarray(gains),
                      null_quantiles=np.asarray(quants),
                      num_significant=int(k) if num_significant is None
                      else int(num_significant),
                      candidate_gains=np.stack(cand))


def top_k(scores: np.ndarray, k: int) -> list:
  """The ``k`` highest single-source scores (stable order on ties)."""
  return [int(i) for i in np.argsort(-np.asarray(scores), kind="stable")[:k]]


def all_subsets(q: int, k: int, limit: int = 20000) -> np.ndarray:
  """``[C(q, k), k]`` every k-subset of ``range(q)`` (ConfigError above ``limit``)."""
  count = math.comb(q, k)
  if count > limit:
    raise ConfigError(f"{count} subsets of size {k} from {q} sources exceed the "
                      f"exhaustive-search limit {limit}; use a smaller pool "
                      "(--pool_size).")
  return np.asarray(list(itertools.combinations(range(q), k)), np.int32).reshape(
      count, k)


def subset_index(subsets: np.ndarray) -> dict:
  """``{sorted tuple: row}`` for looking up a set's ground truth."""
  return {tuple(int(i) for i in sorted(s)): r for r, s in enumerate(subsets)}


def compare_sets(truth: Callable[[Sequence[int]], float], subsets: np.ndarray,
                 subset_truth: np.ndarray, single_truth: np.ndarray,
                 picks: dict) -> dict:
  """Ground truth of each method's set against the oracle subset and baselines.

  Args:
    truth: set -> ground truth (higher is better).
    subsets: ``[m, k]`` every k-subset; subset_truth ``[m]`` their truth.
    single_truth: ``[q]`` ground truth of each source alone.
    picks: ``{method: list of source indices}``.

  Returns:
    ``{"oracle": ..., "oracle_set": ..., "random_mean": ..., "best_single": ...,
    "methods": {name: {"set", "truth", "regret", "rank_of_set"}}}``; regret is
    oracle minus the set's truth, ``rank_of_set`` its rank among all subsets
    (1 = the oracle's).
  """
  best = int(np.argmax(subset_truth))
  oracle = float(subset_truth[best])
  out = {"oracle": oracle, "oracle_set": [int(i) for i in subsets[best]],
         "random_mean": float(np.mean(subset_truth)),
         "random_sd": float(np.std(subset_truth)),
         "best_single": float(np.max(single_truth)),
         "best_single_source": int(np.argmax(single_truth)),
         "num_subsets": int(len(subset_truth)), "methods": {}}
  for name, s in picks.items():
    v = float(truth(s))
    out["methods"][name] = {"set": [int(i) for i in s], "truth": v,
                            "regret": oracle - v,
                            "rank_of_set": int(1 + np.sum(subset_truth > v))}
  return out
