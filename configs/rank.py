"""Rank a zoo for a target (``python -m experiments.rank``), or any sources
(``sources``: zoo:PATH, flax:package.module:fn[@CKPT], files:FOLDER)."""
from ml_collections import config_dict

from transferjax.config import to_config
from transferjax.data import DEFAULT_FRACTION
from transferjax.scoring.rank import RankJob
from transferjax.sources.stream import StreamConfig
from transferjax.transfer.fit import FitConfig


def get_config():
  return to_config(dict(
      zoo="runs/zoo",
      target="mnist:4,9",
      # default <zoo>/rank/<target> (runs/rank/<target> with sources)
      workdir=config_dict.placeholder(str),
      image_size=config_dict.placeholder(int),  # default: the zoo's
      fraction=DEFAULT_FRACTION,
      num_labeled=config_dict.placeholder(int),
      split_seed=0,
      job=RankJob(fit=FitConfig(max_epochs=60, patience=10)),
      sources=(),  # non-empty: rank these instead of ``zoo`` (sources job)
      methods=(),  # with sources: methods to score (first orders the table); "all"
      top=10,
      stream=StreamConfig(),
  ))
