"""Ground-truth scores of a fine-tuned net on the test set ``D_e``.

Binary targets are judged by test AUC (threshold-free, the paper's choice).
Multi-class targets are judged by top-1 accuracy, with the mean per-class
accuracy (balanced accuracy) recorded beside it: with few shots per class a
net can trade one class for another, which top-1 accuracy on a balanced test set
and the per-class mean both see, and which AUC does not define.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from transferjax.errors import ConfigError, DataError

GT_METRICS = ("auto", "auc", "accuracy", "balanced_accuracy")


def resolve_metric(metric: str, num_classes: int) -> str:
  """``"auto"`` -> ``"auc"`` for two classes, ``"accuracy"`` for more."""
  if metric not in GT_METRICS:
    raise ConfigError(f"Unknown ground-truth metric {metric!r}; choose one of "
                      f"{GT_METRICS}.")
  if metric == "auto":
    return "auc" if num_classes == 2 else "accuracy"
  if metric == "auc" and num_classes != 2:
    raise ConfigError(f"AUC is defined for binary targets; this target has "
                      f"{num_classes} classes. Use accuracy or balanced_accuracy.")
  return metric


def secondary_metrics(primary: str, num_classes: int) -> tuple[str, ...]:
  """The other scores recorded beside ``primary`` (multi-class: both accuracies)."""
  if num_classes == 2:
    return ()
  return tuple(m for m in ("accuracy", "balanced_accuracy") if m != primary)


def score_logits(labels: np.ndarray, logits: np.ndarray, metric: str,
                 num_classes: int) -> float:
  """One net's test score.

  Args:
    labels: ``[E]`` int test labels.
    logits: ``[E, C_max]`` logits (columns ``>= num_classes`` ignored).
    metric: ``"auc"``, ``"accuracy"`` or ``"balanced_accuracy"``.
    num_classes: the target's class count.
  """
  labels = np.asarray(labels)
  logits = np.asarray(logits, np.float64)[:, :num_classes]
  if metric == "auc":
    if len(np.unique(labels)) < 2:
      raise DataError("The test split D_e has one class; AUC needs both classes.")
    return float(roc_auc_score(labels, logits[:, 1] - logits[:, 0]))
  pred = np.argmax(logits, axis=1)
  hit = pred == labels
  if metric == "accuracy":
    return float(hit.mean())
  if metric == "balanced_accuracy":
    return float(np.mean([hit[labels == c].mean() for c in np.unique(labels)]))
  raise ConfigError(f"Unknown ground-truth metric {metric!r}.")
