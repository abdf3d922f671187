"""The paper's figures (Afridi et al. 2018, Figs. 6-10) and a stability plot.

Matplotlib with the Agg backend (no display needed); every figure goes to disk
through :func:`transferjax.io.save_figure` (atomic PNG write). Each function
returns the path it wrote.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)
import numpy as np  # noqa: E402
from scipy import stats as sps  # noqa: E402

from transferjax import io  # noqa: E402
from transferjax.errors import EstimatorError  # noqa: E402

__all__ = ["normalize_scores", "minmax_scores", "plot_score_vs_auc", "plot_features_3d",
           "plot_auc_vs_fraction", "plot_tau_distributions"]


def normalize_scores(scores: Any) -> tuple[np.ndarray, str]:
  """The paper's normalized score ``score / max(score)``, where that makes sense.

  The paper divides each score by the pool maximum (``gamma_i / max_j gamma_j``).
  That only preserves the order when every score is >= 0 and the maximum is > 0
  (a CMI is). For scores that can be negative (a negated reconstruction error,
  LogME, LEEP) we min-max scale to ``[0, 1]`` instead, which keeps the order.

  Args:
    scores: ``[q]``.

  Returns:
    ``(normalized [q], axis label)``.
  """
  s = np.asarray(scores, dtype=np.float64)
  if s.size and np.all(s >= 0) and s.max() > 0:
    return s / s.max(), "score / max score"
  span = np.ptp(s) if s.size else 0.0
  if span == 0:
    return np.zeros_like(s), "score (constant)"
  return (s - s.min()) / span, "min-max scaled score"


def _grid(n: int) -> tuple[int, int]:
  cols = min(n, 3)
  return int(math.ceil(n / cols)), cols


def minmax_scores(scores: Any) -> np.ndarray:
  """``[q]`` scores scaled to [0, 1] (lowest source 0, highest 1; constant: 0)."""
  s = np.asarray(scores, dtype=np.float64)
  span = np.ptp(s) if s.size else 0.0
  return np.zeros_like(s) if span == 0 else (s - s.min()) / span


def plot_score_vs_auc(method_scores: Mapping[str, Any], auc: Any,
                      no_transfer: float | None, path: str, *,
                      auc_err: Any = None, title: str | None = None,
                      point_labels: Sequence[Any] | None = None,
                      truth_name: str = "AUC") -> str:
  """Score vs AUC after transfer, one panel per method (Figs. 6, 9, 10).

  ``truth_name`` labels the ground truth's axis ("AUC" for binary targets,
  "accuracy" for multi-class ones).

  Every panel has the same x scale: the method's scores min-max scaled to
  [0, 1] (0 = its lowest-scored source, 1 = its highest), so panels compare;
  ``point_labels`` (e.g. source ids) are written beside the points.

  Args:
    method_scores: method name -> ``[q]`` scores (higher = predicted better).
    auc: ``[q]`` ground truth (mean test AUC after fine-tuning).
    no_transfer: the from-scratch AUC, drawn as a horizontal line (None: omitted).
    path: output PNG.
    auc_err: optional ``[q]`` error bars (e.g. sd over seeds/splits).
    title: optional figure title.
    point_labels: optional ``[q]`` labels drawn at the points.

  Returns:
    ``path``.
  """
  if not method_scores:
    raise EstimatorError("method_scores is empty: nothing to plot.")
  y = np.asarray(auc, dtype=np.float64)
  rows, cols = _grid(len(method_scores))
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
  for ax, (name, sc) in zip(axes.flat, method_scores.items()):
    s = np.asarray(sc, dtype=np.float64)
    if s.shape != y.shape:
      plt.close(fig)
      raise EstimatorError(f"{name}: scores {s.shape} and auc {y.shape} differ.")
    x, xlabel = minmax_scores(s), "score, min-max scaled (0 = lowest, 1 = highest)"
    if point_labels is not None:
      for xi, yi, lab in zip(x, y, point_labels):
        ax.annotate(str(lab), (xi, yi), xytext=(3, 2), textcoords="offset points",
                    fontsize=6, alpha=0.8)
    if auc_err is not None:
      ax.errorbar(x, y, yerr=np.asarray(auc_err), fmt="o", ms=4, alpha=0.7,
                  elinewidth=0.8)
    else:
      ax.scatter(x, y, s=16, alpha=0.7)
    if no_transfer is not None:
      ax.axhline(float(no_transfer), color="r", ls="--", lw=1, label="no transfer")
      ax.legend(loc="lower right", fontsize=7)
    if np.ptp(s) > 0 and np.ptp(y) > 0:
      rho = sps.spearmanr(s, y).statistic
      wt = sps.weightedtau(s, y).statistic
      ax.set_title(f"{name}\nSpearman {rho:+.2f}, w-tau {wt:+.2f}", fontsize=9)
    else:
      ax.set_title(f"{name}\n(correlation undefined: constant)", fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{truth_name} after transfer")
  for ax in list(axes.flat)[len(method_scores):]:
    ax.axis("off")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  io.save_figure(fig, path)
  return path


def _pca3(x: np.ndarray) -> np.ndarray:
  from sklearn.decomposition import PCA
  x = np.asarray(x, dtype=np.float64)
  if x.ndim != 2:
    raise EstimatorError(f"features must be [n, d]; got shape {x.shape}.")
  k = min(3, x.shape[0], x.shape[1])
  z = PCA(n_components=k).fit_transform(x)
  if k < 3:  # pad so a 3-D axis always gets three coordinates
    z = np.concatenate([z, np.zeros((z.shape[0], 3 - k))], axis=1)
  return z


def plot_features_3d(features_best: Any, features_worst: Any, labels: Any,
                     path: str, *, names: Sequence[str] = ("best-ranked source",
                                                           "worst-ranked source"),
                     class_names: Sequence[str] | None = None) -> str:
  """Target features of two sources, PCA to 3-D, colored by class (Fig. 7).

  PCA (sklearn) is fitted separately for each source, as in the paper: the point
  is how well each representation separates the classes, not a shared basis.

  Args:
    features_best: ``[n, d]`` penultimate features of the best-ranked source.
    features_worst: ``[n, d']`` the same for the worst-ranked source.
    labels: ``[n]`` int class of each sample.
    path: output PNG.
    names: panel titles.
    class_names: legend names per class id.

  Returns:
    ``path``.
  """
  lab = np.asarray(labels)
  fig = plt.figure(figsize=(10, 4.5))
  for j, (feats, name) in enumerate(zip((features_best, features_worst), names)):
    z = _pca3(feats)
    if z.shape[0] != lab.shape[0]:
      plt.close(fig)
      raise EstimatorError(
          f"{name}: {z.shape[0]} feature rows but {lab.shape[0]} labels.")
    ax = fig.add_subplot(1, 2, j + 1, projection="3d")
    for c in np.unique(lab):
      m = lab == c
      label = class_names[int(c)] if class_names is not None else f"class {c}"
      ax.scatter(z[m, 0], z[m, 1], z[m, 2], s=8, alpha=0.7, label=label)
    ax.set_title(name)
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_zlabel("PC3")
    ax.legend(fontsize=7)
  io.save_figure(fig, path)
  return path


def plot_auc_vs_fraction(fractions: Any, best: Any, worst: Any, none: Any,
                         path: str, *, best_sd: Any = None, worst_sd: Any = None,
                         none_sd: Any = None) -> str:
  """AUC after transfer vs the fraction of target training data (Fig. 8).

  Args:
    fractions: ``[f]`` fractions (or percentages) of the target training data.
    best: ``[f]`` AUC fine-tuned from the best-ranked source.
    worst: ``[f]`` AUC fine-tuned from the worst-ranked source.
    none: ``[f]`` AUC without transfer.
    path: output PNG.
    best_sd, worst_sd, none_sd: optional ``[f]`` spreads, drawn as error bars.

  Returns:
    ``path``.
  """
  x = np.asarray(fractions, dtype=np.float64)
  fig, ax = plt.subplots(figsize=(5, 3.8))
  for y, err, label, style in ((best, best_sd, "best-ranked source", "o-"),
                               (worst, worst_sd, "worst-ranked source", "s-"),
                               (none, none_sd, "no transfer", "^--")):
    y = np.asarray(y, dtype=np.float64)
    if y.shape != x.shape:
      plt.close(fig)
      raise EstimatorError(f"{label}: {y.shape} values for {x.shape} fractions.")
    ax.errorbar(x, y, yerr=None if err is None else np.asarray(err), fmt=style,
                capsize=3, ms=4, label=label)
  ax.set_xlabel("fraction of target training data")
  ax.set_ylabel("test AUC")
  ax.legend(fontsize=8)
  io.save_figure(fig, path)
  return path


def plot_tau_distributions(method_taus: Mapping[str, Any], path: str, *,
                           ylabel: str = "weighted Kendall tau",
                           ceiling: float | None = None) -> str:
  """Box plots (with points) of each method's taus over sub-pools or targets.

  Args:
    method_taus: method name -> ``[m]`` taus (nan entries are dropped).
    path: output PNG.
    ylabel: y-axis label.
    ceiling: optional reference line (e.g. the ground truth's split-half value).

  Returns:
    ``path``.
  """
  if not method_taus:
    raise EstimatorError("method_taus is empty: nothing to plot.")
  names = list(method_taus)
  data = [np.asarray(method_taus[n], dtype=np.float64) for n in names]
  data = [d[np.isfinite(d)] for d in data]
  fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(names) + 1.5), 3.8))
  ax.boxplot([d if d.size else np.array([np.nan]) for d in data], showfliers=False)
  ax.set_xticks(np.arange(1, len(names) + 1), labels=names)
  rng = np.random.default_rng(0)  # fixed jitter: the figure is reproducible
  for i, d in enumerate(data):
    ax.scatter(i + 1 + rng.uniform(-0.15, 0.15, d.size), d, s=6, alpha=0.4)
  ax.axhline(0.0, color="k", lw=0.6)
  if ceiling is not None and np.isfinite(ceiling):
    ax.axhline(float(ceiling), color="g", ls=":", lw=1, label="ceiling")
    ax.legend(fontsize=8)
  ax.set_ylabel(ylabel)
  plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
  io.save_figure(fig, path)
  return path
