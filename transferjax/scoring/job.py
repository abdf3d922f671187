"""``run(config)`` of ``python -m experiments.rank``: rank a zoo for one target."""
from __future__ import annotations

import dataclasses
import logging
import os
import time

import jax
import numpy as np

from transferjax import io as tio
from transferjax.data import (DEFAULT_FRACTION, DEFAULT_VAL_FRACTION, load_target,
                              paper_split, split_sizes_report)
from transferjax.errors import CheckpointError, ConfigError
from transferjax.scoring.informative import ranking_warnings
from transferjax.scoring.methods import RankConfig
from transferjax.scoring import uncertainty
from transferjax.scoring import weak as weak_lib
from transferjax.scoring.rank import (RankJob, explain_scores, format_table,
                                      gamma_max, score_zoo, write_ranking)
from transferjax.transfer.fit import FitConfig


@dataclasses.dataclass(frozen=True)
class RankRunConfig:
  """Flags of ``experiments.rank``.

  Attributes:
    zoo: workdir of a trained zoo (``experiments.train_sources``).
    target: target spec, e.g. ``"mnist:4,9"``, ``"spots"``, ``"npz:/p.npz:0,1"``.
    workdir: output folder (default ``<zoo>/rank/<target>``).
    image_size: target image side (None: the zoo's; a different value is an error).
    fraction: share of the target data that is labeled (``D_a``), the paper's 5%.
    num_labeled: absolute ``|D_a|`` instead of ``fraction``.
    split_seed: seed of the target split.
    job: protocol, folds, ranking and target-net settings.
    shots_per_class: few-shot ``D_a`` (this many labeled images per class;
      overrides ``fraction`` and ``num_labeled``).
    val_fraction: share of the labeled images held out for early stopping
      (``D_v``; at least 2 per class).
  """
  zoo: str
  target: str = "mnist:4,9"
  workdir: str | None = None
  image_size: int | None = None
  fraction: float = DEFAULT_FRACTION
  num_labeled: int | None = None
  split_seed: int = 0
  job: RankJob = RankJob()
  shots_per_class: int | None = None
  val_fraction: float = DEFAULT_VAL_FRACTION


def load_target_for_zoo(target: str, zoo, image_size: int | None, **options):
  """Loads the target at the zoo's image size; a different explicit size is an error."""
  size = int(zoo.image_size) if image_size is None else int(image_size)
  if size != int(zoo.image_size):
    raise ConfigError(
        f"--image_size={size} but the zoo's source CNNs take {zoo.image_size}x"
        f"{zoo.image_size} images; source and target sizes must match. Drop "
        f"--image_size (it defaults to the zoo's) or train a zoo at {size}.")
  if target.startswith("spots"):
    if size != 9:
      raise ConfigError(
          f"The spots target is 9x9 patches but the zoo takes {size}x{size} images; "
          "train a spot zoo: train_sources --arch=spot9 --image_size=9.")
    return load_target(target, **options)
  return load_target(target, image_size=size, **options)


def open_zoo(path: str):
  """``load_zoo`` with a clear error for a missing or incomplete zoo."""
  from transferjax.train import zoo as zoo_lib
  from transferjax.train import zoo_union
  if not os.path.isdir(path):
    raise CheckpointError(
        f"No zoo at {path!r}. Train one first: python -m experiments.train_sources "
        f"--workdir={path}")
  if zoo_union.is_union(path):
    return zoo_union.load_union(path)
  return zoo_lib.load_zoo(path)


def run(config: RankRunConfig) -> dict:
  """Trains N_t, scores every source, writes ranking.json/csv; returns the result."""
  t0 = time.time()
  workdir = tio.check_output_dir(config.workdir or os.path.join(
      config.zoo, "rank", config.target.replace(":", "_").replace(",", "-").replace("/", "_")))
  zoo = open_zoo(config.zoo)
  target = load_target_for_zoo(config.target, zoo, config.image_size)
  split = paper_split(target, fraction=config.fraction,
                      num_labeled=config.num_labeled, seed=config.split_seed,
                      shots_per_class=config.shots_per_class,
                      val_fraction=config.val_fraction)
  logging.info("target %s: %s", config.target, split_sizes_report(split))
  scores, inp, scoring = score_zoo(zoo, split, config.job)
  method = config.job.rank.method
  g_max = gamma_max(inp, config.job.rank) if method.startswith("cmi") else None
  meta = {
      "zoo": os.path.abspath(config.zoo), "target": config.target,
      "method": method, "protocol": config.job.protocol,
      "scoring_set_size": int(len(scoring.labels)), "split": split.sizes(),
      "rank_config": dataclasses.asdict(config.job.rank),
      "seconds": round(time.time() - t0, 2),
  }
  warnings, notes = ranking_warnings(inp.labels, inp.t, scores[method], method,
                                     g_max, scoring.images)
  meta.update(informative=not warnings, warnings=warnings, notes=notes)
  unc = uncertainty.score_uncertainty(
      inp, dataclasses.replace(config.job.rank, method=method), scores[method],
      key=jax.random.fold_in(jax.random.key(config.job.rank.seed), 17))
  weak = weak_lib.weak_sources(zoo.tasks, zoo.metrics.get(
      "holdout_accuracy", np.full(len(zoo.tasks), np.nan)))
  warning = weak_lib.weak_sources_message(weak, len(zoo.tasks), zoo.config)
  meta["weak_sources"] = weak
  if unc is not None:
    meta["uncertainty"] = {"level": unc["level"], "num_boot": unc["num_boot"],
                           "p_top_first": unc["p_top_first"],
                           "kind": "bootstrap over the scoring images"}
  rows = write_ranking(workdir, zoo, scores[method], g_max, meta, unc)
  print(f"\nRanking of {len(rows)} sources for {config.target} by {method} "
        f"({config.job.protocol} protocol, n={len(scoring.labels)} scoring images"
        + (f"; upper bound gamma_max = H(Y|T) = {g_max:.4f}" if g_max is not None
           else "") + "):")
  print(format_table(rows))
  for line in warnings:
    print(f"WARNING: these scores carry no information. {line}")
  for line in notes:
    print(f"Note: {line}")
  print(explain_scores(rows, unc, len(scoring.labels), method))
  if warning:
    print(warning)
  print(f"\nwrote {os.path.join(workdir, 'ranking.json')} and ranking.csv "
        f"({time.time() - t0:.1f}s)")
  return {"rows": rows, "meta": meta, "workdir": workdir}
