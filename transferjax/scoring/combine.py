"""Ranking methods built from other methods' scores: rank consensus and a ranker
learned across targets.

* ``rank_consensus(scores, members)``: the mean over ``members`` of each
  source's normalized rank (0 = worst, 1 = best in this zoo). Ranks, not raw
  scores, because the members' scales (nats, accuracies, log-evidence) are not
  comparable; the mean of ranks is the Borda count.
* ``LearnedRanker``: ridge regression from the members' normalized ranks to the
  standardized gain over no transfer, fit on *other* targets' ground truth and
  applied to a new target (leave-one-target-out).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy import stats as sps

from transferjax.errors import ConfigError


def normalized_ranks(scores: np.ndarray) -> np.ndarray:
  """``[q]`` average ranks scaled to ``[0, 1]`` (ties share a rank; a constant
  or non-finite score gives 0.5 everywhere: it carries no ordering)."""
  s = np.asarray(scores, np.float64)
  if s.size < 2 or not np.all(np.isfinite(s)) or np.ptp(s) <= 1e-10 * max(1.0, np.abs(s).max()):
    return np.full(s.shape, 0.5)
  return (sps.rankdata(s) - 1) / (len(s) - 1)


def rank_consensus(scores: Mapping[str, np.ndarray], members: Sequence[str]) -> np.ndarray:
  """Mean normalized rank of the sources over ``members`` (higher = better)."""
  missing = [m for m in members if m not in scores]
  if missing:
    raise ConfigError(f"rank_consensus needs scores of {missing}.")
  return np.mean([normalized_ranks(scores[m]) for m in members], axis=0)


class LearnedRanker:
  """Ridge regression of standardized gain on the members' normalized ranks."""

  def __init__(self, members: Sequence[str], alpha: float = 1.0):
    self.members = tuple(members)
    self.alpha = float(alpha)
    self.coef = None

  def _x(self, scores: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.stack([normalized_ranks(scores[m]) - 0.5 for m in self.members], 1)

  def fit(self, settings: Sequence[tuple[Mapping[str, np.ndarray], np.ndarray]]):
    """``settings``: ``[(scores, target_z [q]), ...]`` from other targets."""
    x = np.concatenate([self._x(s) for s, _ in settings])
    y = np.concatenate([np.asarray(z, np.float64) for _, z in settings])
    d = x.shape[1]
    self.coef = np.linalg.solve(x.T @ x + self.alpha * len(y) * np.eye(d) / d, x.T @ y)
    return self

  def predict(self, scores: Mapping[str, np.ndarray]) -> np.ndarray:
    if self.coef is None:
      raise ConfigError("LearnedRanker.predict before fit.")
    return self._x(scores) @ self.coef
