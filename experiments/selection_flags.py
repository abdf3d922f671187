"""Flags shared by ``experiments.select`` and ``experiments.layers``."""
from __future__ import annotations

from absl import flags

from transferjax.scoring.methods import RankConfig
from transferjax.scoring.rank import RankJob
from transferjax.selection.engine import SettingConfig
from transferjax.transfer.fit import FitConfig

_S = SettingConfig(zoo="")
_F = FitConfig()

flags.DEFINE_string("zoo", "runs/zoo_spot9", "Workdir of a trained zoo.")
flags.DEFINE_string("target", _S.target,
                    "Target: spots, faces, mnist:5,6,7,8,9, digits, scenes_heldout, ...")
flags.DEFINE_float("fraction", _S.fraction, "Labeled share of the target (D_a).")
flags.DEFINE_integer("num_labeled", None, "Absolute |D_a| (overrides --fraction).")
flags.DEFINE_integer("shots_per_class", None,
                     "Labeled images per class (few-shot; overrides --fraction).")
flags.DEFINE_integer("max_test_per_class", None, "Cap on test images per class.")
flags.DEFINE_enum("metric", _S.metric, ["auto", "auc", "accuracy", "balanced_accuracy"],
                  "Ground truth of a net and of a set (auto: AUC for binary targets, "
                  "top-1 accuracy for multi-class ones).")
flags.DEFINE_string("reuse_finetune", None,
                    "A finished study workdir of the same setting (e.g. "
                    "runs/suite_testbed/settings/mixed/faces): read its fine-tuning "
                    "runs (every conv layer transferred) instead of fine-tuning again.")
flags.DEFINE_integer("num_splits", _S.num_splits, "Target splits.")
flags.DEFINE_integer("num_seeds", _S.num_seeds, "Fine-tuning seeds per source and split.")
flags.DEFINE_integer("pool_size", _S.pool_size, "Use the first N sources (0: all).")
flags.DEFINE_string("cache", None, "Stage cache (default runs/selection/<zoo>__<target>).")
flags.DEFINE_string("out", None, "Report folder (default results/select or results/layers).")
flags.DEFINE_integer("n_perm", _S.n_perm, "Surrogates of the greedy stopping rule's null.")
flags.DEFINE_float("alpha", _S.alpha, "Stop when the best gain <= the 1-alpha null quantile.")
flags.DEFINE_integer("max_epochs", _F.max_epochs, "Fine-tuning epoch cap.")
flags.DEFINE_integer("patience", _F.patience, "Fine-tuning early-stopping patience.")
flags.DEFINE_integer("seed", 0, "Root seed.")

FLAGS = flags.FLAGS


def setting_config(ks: tuple[int, ...]) -> SettingConfig:
  """The ``SettingConfig`` of the parsed flags."""
  # No fixed-epoch budgets: selection reads only the early-stopped score (as the
  # suites do, so --reuse_finetune can read a suite's runs).
  fit = FitConfig(max_epochs=FLAGS.max_epochs, patience=FLAGS.patience, budgets=())
  job = RankJob(rank=RankConfig(seed=FLAGS.seed), fit=fit)
  return SettingConfig(
      zoo=FLAGS.zoo, target=FLAGS.target, cache=FLAGS.cache, fraction=FLAGS.fraction,
      num_labeled=FLAGS.num_labeled or None, shots_per_class=FLAGS.shots_per_class,
      max_test_per_class=FLAGS.max_test_per_class, metric=FLAGS.metric,
      reuse_finetune=FLAGS.reuse_finetune, num_splits=FLAGS.num_splits,
      num_seeds=FLAGS.num_seeds, pool_size=FLAGS.pool_size, ks=ks,
      n_perm=FLAGS.n_perm, alpha=FLAGS.alpha, finetune=fit, job=job, seed=FLAGS.seed)
