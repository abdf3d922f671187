"""The short flags of ``experiments.select`` and ``experiments.layers``: aliases
of their config's ``setting`` section (``config_cli``). Fine-tuning and the
ranking's target nets share the epoch cap and patience."""
from __future__ import annotations

from absl import flags

from experiments import config_cli

for _name, _kind, _help in (
    ("pool_size", flags.DEFINE_integer, "Use the first N sources (0: all)."),
    ("cache", flags.DEFINE_string, "Stage cache (default runs/selection/<zoo>__<target>)."),
    ("out", flags.DEFINE_string, "Report folder (default results/select or results/layers)."),
    ("n_perm", flags.DEFINE_integer, "Surrogates of the greedy stopping rule's null."),
    ("alpha", flags.DEFINE_float, "Stop when the best gain <= the 1-alpha null quantile."),
    ("max_test_per_class", flags.DEFINE_integer, "Cap on test images per class."),
    ("reuse_finetune", flags.DEFINE_string,
     "A finished study workdir of the same setting (e.g. runs/suite_testbed_v2/settings/"
     "mixed/faces): read its fine-tuning runs (every conv layer transferred) instead "
     "of fine-tuning again.")):
  config_cli.define(_name, _kind, _help)
# --metric is the CMI's norm elsewhere; the ground truth's metric is --gt_metric.
config_cli.define("gt_metric", flags.DEFINE_enum,
                  "Ground truth of a net and of a set (auto: AUC for binary targets, "
                  "top-1 accuracy for multi-class ones).",
                  enum_values=["auto", "auc", "accuracy", "balanced_accuracy"])

ALIASES = {
    "zoo": "setting.zoo", "target": "setting.target", "fraction": "setting.fraction",
    "num_labeled": "setting.num_labeled", "num_splits": "setting.num_splits",
    "shots_per_class": "setting.shots_per_class",
    "max_test_per_class": "setting.max_test_per_class", "gt_metric": "setting.metric",
    "reuse_finetune": "setting.reuse_finetune",
    "num_seeds": "setting.num_seeds", "pool_size": "setting.pool_size",
    "cache": "setting.cache", "out": "out", "n_perm": "setting.n_perm",
    "alpha": "setting.alpha",
    "max_epochs": ("setting.finetune.max_epochs", "setting.job.fit.max_epochs"),
    "patience": ("setting.finetune.patience", "setting.job.fit.patience"),
    "seed": ("setting.seed", "setting.job.rank.seed"),
}
