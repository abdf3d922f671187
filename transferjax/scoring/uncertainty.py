"""How sure a ranking is: bootstrap intervals over the scoring set.

A k-NN score is the mean of per-sample terms over the n scoring images
(``methods.local_terms``). Resampling the n images with replacement and
averaging the same terms (one resample shared by all sources, so the sources
stay paired) gives each source's sampling spread and, per resample, which
source comes first. The neighbour structure is held fixed: re-estimating on a
resample would put duplicated images at distance 0 and inflate every score.
The intervals cover the noise of the scoring sample, not the randomness of
training the target net.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from transferjax.errors import EstimatorError
from transferjax.scoring.methods import RankConfig, RankInputs, local_terms


@jax.jit
def _resampled_means(local: jax.Array, key: jax.Array, num_boot_shape: jax.Array):
  n = local.shape[1]
  idx = jax.random.randint(key, (num_boot_shape.shape[0], n), 0, n)
  counts = jax.vmap(lambda i: jnp.bincount(i, length=n))(idx)       # [B, n]
  return counts.astype(local.dtype) @ local.T / n                   # [B, q]


def bootstrap_means(local, key: jax.Array, num_boot: int = 1000) -> np.ndarray:
  """Means of ``local [q, n]`` over ``num_boot`` paired row resamples: ``[B, q]``.

  Rows with a NaN term (singleton classes the estimator dropped) are left out.
  """
  local = np.asarray(local, np.float64)
  if local.ndim != 2:
    raise EstimatorError(f"local terms must be [q, n], got shape {local.shape}.")
  if num_boot < 2:
    raise EstimatorError(f"num_boot must be >= 2, got {num_boot}.")
  rows = np.isfinite(local).all(axis=0)
  if rows.sum() < 2:
    raise EstimatorError("fewer than 2 scoring rows with finite terms; nothing to "
                         "bootstrap.")
  out = _resampled_means(jnp.asarray(local[:, rows], jnp.float32), key,
                         jnp.zeros(int(num_boot)))
  return np.asarray(out, np.float64)


def summarize(boot: np.ndarray, scores: np.ndarray, level: float = 0.9) -> dict:
  """Per-source interval and the probability of ranking first.

  Args:
    boot: ``[B, q]`` resampled scores.
    scores: ``[q]`` point estimates (the ranking).
    level: central interval coverage.

  Returns:
    ``{"ci_low" [q], "ci_high" [q], "p_first" [q], "p_top_first",
    "top_index", "level", "num_boot"}``; ``p_first[i]`` is the share of
    resamples in which source i scores highest (ties split evenly), and
    ``p_top_first`` that share for the source ranked first.
  """
  boot = np.asarray(boot, np.float64)
  b, q = boot.shape
  alpha = (1.0 - level) / 2
  lo, hi = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
  best = boot == boot.max(axis=1, keepdims=True)
  p_first = (best / best.sum(axis=1, keepdims=True)).mean(axis=0)
  top = int(np.argsort(-np.asarray(scores), kind="stable")[0])
  return {"ci_low": lo, "ci_high": hi, "p_first": p_first,
          "p_top_first": float(p_first[top]), "top_index": top,
          "level": float(level), "num_boot": int(b)}


def score_uncertainty(inp: RankInputs, cfg: RankConfig, scores, *,
                      key: jax.Array, num_boot: int = 1000,
                      level: float = 0.9) -> dict | None:
  """Bootstrap summary (``summarize``) of a k-NN method's scores; None otherwise.

  Args:
    inp: the zoo outputs on the scoring set.
    cfg: the ranking config that produced ``scores``.
    scores: ``[q]`` scores of ``cfg.method``.
    key: PRNG key of the resamples.
    num_boot: resamples.
    level: interval coverage.
  """
  local = local_terms(inp, cfg)
  if local is None:
    return None
  scores = np.asarray(scores, np.float64)
  # A null-corrected score is the mean of the terms minus a per-source constant.
  shift = scores - np.nanmean(local, axis=1)
  boot = bootstrap_means(local, key, num_boot) + shift[None, :]
  return summarize(boot, scores, level)
