r"""Rank a zoo of source CNNs for a target task, zero-shot, by I(Y; F | T).

Command (expected runtime on a 2-core CPU with a 32-source zoo: about 1 min,
most of it training the 5 cross-fitted target nets)::

  python -m experiments.rank --zoo=runs/zoo --target=mnist:4,9 --estimator=knn

Expected result: a top-10 table (rank, source id, pool, classes, holdout
accuracy, gamma, normalized gamma) and ``ranking.json`` / ``ranking.csv`` in
``--workdir`` (default ``<zoo>/rank/<target>``). ``--protocol=paper`` scores on
``D_v`` only (the paper's protocol; a handful of images at 5%).

Your own models on your own images (``transferjax.sources``; docs/notes/own_models.md)::

  python -m experiments.rank --sources=zoo:runs/zoo,flax:my_models:resnet,files:feats \
      --target=folder:/data/pets --methods=all --workdir=runs/rank_pets

writes ranking.json/csv, ranking_top.md and scores.png in ``--workdir``.
"""
import os

from transferjax import cli
from absl import app
from absl import flags

from transferjax.data import DEFAULT_FRACTION
from transferjax.scoring.job import RankRunConfig, run
from transferjax.scoring.methods import METHODS, RankConfig
from transferjax.scoring.rank import RankJob
from transferjax.scoring.target import PROTOCOLS
from transferjax.sources import job as sources_job
from transferjax.sources.stream import StreamConfig
from transferjax.transfer.fit import FitConfig

_ZOO = flags.DEFINE_string("zoo", "runs/zoo", "Workdir of a trained zoo.")
_TARGET = flags.DEFINE_string("target", "mnist:4,9",
                              "Target spec: mnist:A,B, digits:A,B, spots, faces, npz:PATH[:A,B].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (default <zoo>/rank/<target>).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Target image side (default: the zoo's).")
_FRACTION = flags.DEFINE_float("fraction", DEFAULT_FRACTION,
                               "Labeled share of the target data (D_a); the paper's 5%.")
_NUM_LABELED = flags.DEFINE_integer("num_labeled", None, "Absolute |D_a| (overrides --fraction).")
_SPLIT_SEED = flags.DEFINE_integer("split_seed", 0, "Target split seed.")
_PROTOCOL = flags.DEFINE_enum("protocol", "crossfit", PROTOCOLS,
                              "crossfit: out-of-fold T on all of D_a; paper: D_v only.")
_FOLDS = flags.DEFINE_integer("folds", 5, "Cross-fitting folds (>= 3).")
_ESTIMATOR = flags.DEFINE_enum("estimator", "knn", ["knn", "binned"],
                               "CMI estimator (shorthand for --method=cmi_knn / cmi_binned).")
_METHOD = flags.DEFINE_string("method", None,
                              f"Any ranking method (overrides --estimator): {sorted(METHODS)}.")
_K = flags.DEFINE_integer("k", 3, "Neighbours of the k-NN estimator.")
_METRIC = flags.DEFINE_enum("metric", "euclidean", ["euclidean", "max"], "Norm within F.")
_FEATURE_DIM = flags.DEFINE_integer("feature_dim", None, "PCA all sources to this dimension.")
_NULL = flags.DEFINE_bool("null_correction", False, "Subtract a permutation-null mean.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of target nets, jitter, permutations.")
_EPOCHS = flags.DEFINE_integer("target_max_epochs", 60, "Target-net epoch cap.")
_PATIENCE = flags.DEFINE_integer("target_patience", 10, "Target-net early-stopping patience.")
_SOURCES = flags.DEFINE_list(
    "sources", [], "Sources of any kind: zoo:PATH, flax:package.module:fn[@CKPT], "
    "files:FOLDER (one .npz of features per source); replaces --zoo.")
_METHODS = flags.DEFINE_list("methods", [], "Methods to score with --sources (first "
                             "orders the table), or 'all'. Default: --method.")
_TOP = flags.DEFINE_integer("top", 10, "Rows of the printed top-N table (--sources).")
_CHUNK_MB = flags.DEFINE_float("chunk_mb", StreamConfig.chunk_mb,
                               "Source outputs held at once, MiB (--sources).")
_UPSAMPLE = flags.DEFINE_bool("allow_upsample", False,
                              "Let sources enlarge target images smaller than their input.")


def main(argv):
  del argv
  method = _METHOD.value or {"knn": "cmi_knn", "binned": "cmi_binned"}[_ESTIMATOR.value]
  rank_cfg = RankConfig(method=method, k=_K.value, metric=_METRIC.value,
                        feature_dim=_FEATURE_DIM.value,
                        null_correction=_NULL.value, seed=_SEED.value)
  fit_cfg = FitConfig(max_epochs=_EPOCHS.value, patience=_PATIENCE.value)
  if _SOURCES.value or _METHODS.value:
    sources = ",".join(_SOURCES.value) or f"zoo:{_ZOO.value}"
    safe = _TARGET.value.replace(":", "_").replace(",", "-").replace("/", "_")
    sources_job.run(sources_job.SourcesRankConfig(
        sources=sources, target=_TARGET.value,
        workdir=_WORKDIR.value or os.path.join(
            "runs" if _SOURCES.value else _ZOO.value, "rank", safe),
        methods=tuple(_METHODS.value) or (method,), image_size=_IMAGE_SIZE.value,
        fraction=_FRACTION.value, num_labeled=_NUM_LABELED.value,
        split_seed=_SPLIT_SEED.value,
        job=RankJob(protocol=_PROTOCOL.value, folds=_FOLDS.value, rank=rank_cfg,
                    fit=fit_cfg),
        stream=StreamConfig(chunk_mb=_CHUNK_MB.value, allow_upsample=_UPSAMPLE.value),
        top=_TOP.value))
    return
  run(RankRunConfig(
      zoo=_ZOO.value, target=_TARGET.value, workdir=_WORKDIR.value,
      image_size=_IMAGE_SIZE.value, fraction=_FRACTION.value,
      num_labeled=_NUM_LABELED.value, split_seed=_SPLIT_SEED.value,
      job=RankJob(protocol=_PROTOCOL.value, folds=_FOLDS.value, rank=rank_cfg,
                  fit=fit_cfg)))


if __name__ == "__main__":
  app.run(cli.guard(main))
