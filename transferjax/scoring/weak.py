"""Sources too weak to rank: holdout accuracy near chance on their own task.

A source CNN that did not learn its own task has near-random features, so its
score (and where it lands in a ranking) says little. Skill is the holdout
accuracy rescaled so that chance (1 / classes) is 0 and perfect is 1.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# Skill below this is "near chance" (e.g. < 0.145 accuracy on 20 classes,
# < 0.55 on 2).
MIN_SKILL = 0.1


def weak_sources(tasks: Sequence, holdout_accuracy, *,
                 min_skill: float = MIN_SKILL) -> list[dict]:
  """Sources whose holdout accuracy is within ``min_skill`` of chance.

  Args:
    tasks: the zoo's ``SourceTask`` list (``task_id``, ``num_classes``).
    holdout_accuracy: ``[q]`` accuracy on each task's held-out images (NaN for
      a task without holdout images: never flagged).
    min_skill: threshold on ``(acc - chance) / (1 - chance)``.

  Returns:
    ``[{"source_id", "holdout_acc", "chance"}]`` in zoo order.
  """
  acc = np.asarray(holdout_accuracy, np.float64)
  out = []
  for task, a in zip(tasks, acc):
    chance = 1.0 / max(int(task.num_classes), 1)
    if np.isfinite(a) and (a - chance) < min_skill * (1.0 - chance):
      out.append({"source_id": int(task.task_id), "holdout_acc": float(a),
                  "chance": chance})
  return out


def weak_sources_message(weak: list[dict], num_sources: int,
                         zoo_config: dict | None = None) -> str | None:
  """One warning naming the weak sources and the fix; None when there are none."""
  if not weak:
    return None
  cfg = zoo_config or {}
  shown = ", ".join(f"{w['source_id']} ({w['holdout_acc']:.2f} vs chance "
                    f"{w['chance']:.2f})" for w in weak[:10])
  more = f" and {len(weak) - 10} more" if len(weak) > 10 else ""
  epochs = f", now {cfg['epochs']}" if "epochs" in cfg else ""
  per_class = (f", now {cfg['max_per_class']}" if cfg.get("max_per_class")
               else "")
  return (f"WARNING: {len(weak)} of {num_sources} source CNNs are near chance on "
          f"their own held-out images (holdout accuracy {shown}{more}). Their "
          "features are close to random, so their scores and ranks say little. "
          "Fix: train the zoo longer (train_sources --epochs" + epochs + ") or "
          "with more images per class (--max_per_class" + per_class + "; 0 = all) "
          "in a new --workdir.")
