"""Does a ranking carry information? Plain-language warnings for degenerate cases.

A ranking is always written, but when the scoring set cannot tell sources apart
the table, ``ranking.json`` and the study report must say so instead of printing
an order that only follows source ids or estimator noise. Nothing is clamped:
the scores stay as estimated, the warnings say why they mean nothing.

Cases (each gives one sentence):

* the scoring images are all identical (a constant target): no network output
  can depend on the image;
* ``H(Y|T)`` (``gamma_max``) is below ``GAMMA_MAX_FLOOR`` of ``H(Y)``: the target
  net already explains the labels, so every ``I(Y; F|T)`` is ~0 and the order is
  noise;
* every source got the same score: the order is the source ids';
* every ``gamma`` is <= 0 (CMI/MI methods): no source shows information about
  ``Y`` (beyond ``T``) above the estimator's noise, and the normalized column is
  undefined.

A constant target-net output ``T`` is reported as a note, not as "no
information": the scores are then the unconditioned ``I(Y; F)``.
"""
from __future__ import annotations

import numpy as np

# H(Y|T) below this share of H(Y) counts as "T explains Y": a k-NN estimate of
# I(Y;F|T) cannot exceed H(Y|T) by more than its noise, so the scores differ by
# noise only.
GAMMA_MAX_FLOOR = 0.05


def _entropy(labels: np.ndarray) -> float:
  p = np.bincount(np.asarray(labels, np.int64)) / max(len(labels), 1)
  p = p[p > 0]
  return float(-(p * np.log(p)).sum())


def ranking_warnings(labels: np.ndarray, t: np.ndarray, scores: np.ndarray,
                     method: str, gamma_max: float | None = None,
                     images: np.ndarray | None = None) -> tuple[list[str], list[str]]:
  """Why a ranking carries no information (empty if it does), and notes.

  Args:
    labels: ``[n]`` scoring labels Y.
    t: ``[n, d_t]`` target-net scores T.
    scores: ``[q]`` the method's scores.
    method: the ranking method's name.
    gamma_max: ``H(Y|T)`` in nats (CMI methods), or None.
    images: ``[n, ...]`` scoring images, or None.

  Returns:
    ``(warnings, notes)``: each a list of sentences. Any warning means the
    scores carry no information about which source transfers best.
  """
  warnings, notes = [], []
  scores = np.asarray(scores, np.float64)
  if images is not None and len(images) > 1:
    flat = np.asarray(images).reshape(len(images), -1)
    if np.all(flat == flat[:1]):
      warnings.append(
          "All scoring images are identical, so no network's output can depend "
          "on the image: every source looks the same to the target labels.")
  h_y = _entropy(labels)
  if gamma_max is not None and np.isfinite(gamma_max) and (
      gamma_max < GAMMA_MAX_FLOOR * h_y):
    warnings.append(
        f"H(Y|T) = {gamma_max:.4f} nats is below {GAMMA_MAX_FLOOR:.0%} of H(Y) = "
        f"{h_y:.4f}: the target net already explains the labels of the scoring "
        "set, so no source can add information beyond it; every gamma is ~0 and "
        "their order is estimator noise. Rank with fewer labeled images or a "
        "harder target, or use an unconditioned method (mi_knn, logme).")
  if len(scores) > 1 and np.all(scores == scores[0]):
    warnings.append(
        f"Every source got the same score ({scores[0]:.4g}), so the order is "
        "just the sources' ids.")
  elif method.startswith(("cmi", "mi_")) and len(scores) and np.all(scores <= 0):
    warnings.append(
        f"Every score is <= 0 (max {scores.max():.4g} nats): no source shows "
        "information about the labels" + (" beyond the target net" if
                                          method.startswith("cmi") else "")
        + " above the estimator's noise, so the order is noise and the "
        "normalized scores are undefined (NaN).")
  t = np.asarray(t)
  if method.startswith("cmi") and t.size and np.all(t == t[:1]):
    notes.append("The target net gives the same output T for every scoring "
                 "image (it learned nothing), so gamma = I(Y; F | T) is the "
                 "unconditioned I(Y; F).")
  return warnings, notes
