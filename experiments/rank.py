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

from absl import app, flags

from experiments import config_cli
from transferjax import cli
from transferjax.config import build
from transferjax.scoring.job import RankRunConfig, run
from transferjax.scoring.rank import RankJob
from transferjax.sources import job as sources_job
from transferjax.sources.stream import StreamConfig

_ESTIMATORS = {"knn": "cmi_knn", "binned": "cmi_binned"}
config_cli.define("estimator", flags.DEFINE_enum, "CMI estimator (shorthand for "
                  "--method=cmi_knn / cmi_binned).", _ESTIMATORS.get,
                  enum_values=sorted(_ESTIMATORS))
config_cli.define("image_size", flags.DEFINE_integer, "Target image side (default: "
                  "the zoo's).")
config_cli.define("split_seed", flags.DEFINE_integer, "Target split seed.")
config_cli.define("feature_dim", flags.DEFINE_integer, "PCA all sources to this "
                  "dimension.")
config_cli.define("null_correction", flags.DEFINE_bool, "Subtract a permutation-null "
                  "mean.")
config_cli.define("target_max_epochs", flags.DEFINE_integer, "Target-net epoch cap.")
config_cli.define("target_patience", flags.DEFINE_integer, "Target-net early-stopping "
                  "patience.")
config_cli.define("sources", flags.DEFINE_list, "Sources of any kind: zoo:PATH, "
                  "flax:package.module:fn[@CKPT], files:FOLDER (one .npz of features "
                  "per source); replaces --zoo.", config_cli.as_tuple)
config_cli.define("top", flags.DEFINE_integer, "Rows of the printed top-N table "
                  "(--sources).")
config_cli.define("chunk_mb", flags.DEFINE_float, "Source outputs held at once, MiB "
                  "(--sources).")
config_cli.define("allow_upsample", flags.DEFINE_bool, "Let sources enlarge target "
                  "images smaller than their input.")
# --estimator before --method: the method wins when both are given.
config_cli.use("rank", {
    "zoo": "zoo", "target": "target", "workdir": "workdir", "image_size": "image_size",
    "fraction": "fraction", "num_labeled": "num_labeled", "split_seed": "split_seed",
    "protocol": "job.protocol", "folds": "job.folds", "estimator": "job.rank.method",
    "method": "job.rank.method", "k": "job.rank.k", "metric": "job.rank.metric",
    "feature_dim": "job.rank.feature_dim", "null_correction": "job.rank.null_correction",
    "seed": "job.rank.seed", "target_max_epochs": "job.fit.max_epochs",
    "target_patience": "job.fit.patience", "sources": "sources", "methods": "methods",
    "top": "top", "chunk_mb": "stream.chunk_mb",
    "allow_upsample": "stream.allow_upsample"})


def main(argv):
  del argv
  cfg = config_cli.resolve()
  job = build(RankJob, cfg.job, "config.job")
  if cfg.sources or cfg.methods:
    sources = ",".join(cfg.sources) or f"zoo:{cfg.zoo}"
    safe = cfg.target.replace(":", "_").replace(",", "-").replace("/", "_")
    sources_job.run(sources_job.SourcesRankConfig(
        sources=sources, target=cfg.target,
        workdir=cfg.workdir or os.path.join(
            "runs" if cfg.sources else cfg.zoo, "rank", safe),
        methods=tuple(cfg.methods) or (job.rank.method,), image_size=cfg.image_size,
        fraction=cfg.fraction, num_labeled=cfg.num_labeled,
        split_seed=cfg.split_seed, job=job,
        stream=build(StreamConfig, cfg.stream, "config.stream"), top=cfg.top))
    return
  run(RankRunConfig(
      zoo=cfg.zoo, target=cfg.target, workdir=cfg.workdir, image_size=cfg.image_size,
      fraction=cfg.fraction, num_labeled=cfg.num_labeled, split_seed=cfg.split_seed,
      job=job))


if __name__ == "__main__":
  app.run(cli.guard(main), flags_parser=config_cli.parse_flags)
