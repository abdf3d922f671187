"""Flags shared by the study entry points (transfer, evaluate, paper, demo)."""
from __future__ import annotations

from absl import flags

from transferjax.scoring.methods import RankConfig
from transferjax.scoring.rank import RankJob
from transferjax.scoring.target import PROTOCOLS
from transferjax.study import StudyConfig
from transferjax.transfer.fit import FitConfig

_S = StudyConfig(workdir="", zoo_dir="")
_F = FitConfig()
_R = RankConfig()

flags.DEFINE_string("target", _S.target, "Target spec: mnist:A,B, digits:A,B, spots, faces, npz:PATH[:A,B].")
flags.DEFINE_float("fraction", _S.fraction, "Labeled share of the target data (D_a); the paper's 5%.")
flags.DEFINE_integer("num_labeled", None, "Absolute |D_a| (overrides --fraction; 0 = use --fraction).")
flags.DEFINE_integer("num_splits", _S.num_splits, "Target splits the ground truth averages over.")
flags.DEFINE_integer("num_seeds", _S.num_seeds, "Fine-tuning seeds per source and split.")
flags.DEFINE_integer("max_epochs", _F.max_epochs, "Fine-tuning / target-net epoch cap.")
flags.DEFINE_integer("patience", _F.patience, "Early-stopping patience (epochs).")
flags.DEFINE_integer("ft_batch_size", _F.batch_size, "Fine-tuning minibatch size.")
flags.DEFINE_float("ft_learning_rate", _F.learning_rate, "Fine-tuning Adam learning rate.")
flags.DEFINE_list("budgets", [str(b) for b in _F.budgets], "Fixed-budget epochs also reported.")
flags.DEFINE_bool("freeze_transferred", False, "Keep the transferred conv layers frozen.")
flags.DEFINE_enum("protocol", "crossfit", PROTOCOLS, "Scoring protocol.")
flags.DEFINE_integer("folds", 5, "Cross-fitting folds.")
flags.DEFINE_string("method", _R.method, "Primary ranking method (ranking table, Fig. 7/8).")
flags.DEFINE_list("methods", list(_S.methods), "Ranking methods to evaluate.")
flags.DEFINE_integer("k", _R.k, "Neighbours of the k-NN estimators.")
flags.DEFINE_enum("metric", _R.metric, ["euclidean", "max"], "Norm within F.")
flags.DEFINE_enum("f_scale", _R.f_scale, ["rms", "none"], "Scale of the F block (see RankConfig).")
flags.DEFINE_integer("seed", 0, "Root seed.")

FLAGS = flags.FLAGS

# absl's --helpshort lists only the flags of the module that was run. An entry
# point makes these its own: ``flags.adopt_module_key_flags(study_flags)`` (all
# of them) or ``flags.declare_key_flag(name)`` per name (``experiments.transfer``
# takes the ground-truth flags only).
GROUND_TRUTH_FLAGS = ("target", "fraction", "num_labeled", "num_splits", "num_seeds",
                      "max_epochs", "patience", "ft_batch_size", "ft_learning_rate",
                      "budgets", "freeze_transferred", "seed")


def study_config(workdir: str, zoo_dir: str, **overrides) -> StudyConfig:
  """The ``StudyConfig`` of the parsed flags (``overrides`` win)."""
  fit = FitConfig(max_epochs=FLAGS.max_epochs, patience=FLAGS.patience,
                  batch_size=FLAGS.ft_batch_size, learning_rate=FLAGS.ft_learning_rate,
                  budgets=tuple(int(b) for b in FLAGS.budgets),
                  freeze_transferred=FLAGS.freeze_transferred)
  rank = RankConfig(method=FLAGS.method, k=FLAGS.k, metric=FLAGS.metric,
                    f_scale=FLAGS.f_scale, seed=FLAGS.seed)
  job = RankJob(protocol=FLAGS.protocol, folds=FLAGS.folds, rank=rank,
                fit=FitConfig(max_epochs=FLAGS.max_epochs, patience=FLAGS.patience,
                              batch_size=FLAGS.ft_batch_size,
                              learning_rate=FLAGS.ft_learning_rate))
  kwargs = dict(workdir=workdir, zoo_dir=zoo_dir, target=FLAGS.target,
                fraction=FLAGS.fraction, num_labeled=FLAGS.num_labeled or None,
                num_splits=FLAGS.num_splits, num_seeds=FLAGS.num_seeds,
                finetune=fit, job=job, methods=tuple(FLAGS.methods), seed=FLAGS.seed)
  kwargs.update(overrides)
  return StudyConfig(**kwargs)
