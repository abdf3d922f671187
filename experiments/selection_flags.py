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
    ("alpha", flags.DEFINE_float, "Stop when the best gain <= the 1-alpha null quantile.")):
  config_cli.define(_name, _kind, _help)

ALIASES = {
    "zoo": "setting.zoo", "target": "setting.target", "fraction": "setting.fraction",
    "num_labeled": "setting.num_labeled", "num_splits": "setting.num_splits",
    "num_seeds": "setting.num_seeds", "pool_size": "setting.pool_size",
    "cache": "setting.cache", "out": "out", "n_perm": "setting.n_perm",
    "alpha": "setting.alpha",
    "max_epochs": ("setting.finetune.max_epochs", "setting.job.fit.max_epochs"),
    "patience": ("setting.finetune.patience", "setting.job.fit.patience"),
    "seed": ("setting.seed", "setting.job.rank.seed"),
}
