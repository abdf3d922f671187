"""The short flags of the study entry points (transfer, evaluate, paper,
benchmark) as aliases of their config's ``study`` section (``config_cli``).

Fine-tuning and the ranking's target nets share the epoch cap, patience,
batch size and learning rate: one flag sets both ``study.finetune`` and
``study.job.fit``.
"""
from __future__ import annotations


def _both(field: str) -> tuple[str, str]:
  return (f"study.finetune.{field}", f"study.job.fit.{field}")


# Flags of the ground truth (experiments.transfer takes only these).
GROUND_TRUTH = {
    "target": "study.target", "fraction": "study.fraction",
    "num_labeled": "study.num_labeled", "num_splits": "study.num_splits",
    "num_seeds": "study.num_seeds", "max_epochs": _both("max_epochs"),
    "patience": _both("patience"), "ft_batch_size": _both("batch_size"),
    "ft_learning_rate": _both("learning_rate"), "budgets": "study.finetune.budgets",
    "freeze_transferred": "study.finetune.freeze_transferred",
    "seed": ("study.seed", "study.job.rank.seed"),
}
# ... and of the rankings evaluated against it.
STUDY = {
    **GROUND_TRUTH,
    "protocol": "study.job.protocol", "folds": "study.job.folds",
    "method": "study.job.rank.method", "methods": "study.methods",
    "k": "study.job.rank.k", "metric": "study.job.rank.metric",
    "f_scale": "study.job.rank.f_scale",
}
