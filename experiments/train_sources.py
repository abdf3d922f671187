r"""Train (or resume) a zoo of source CNNs, one per random class-subset task.

Command (the default zoo: 32 tasks of 2-20 scene-region classes, <= 50 images per
class, lenet20, 15 epochs of Adam 1e-3, batch 64):

  python -m experiments.train_sources --num_tasks=32 --dataset=scenes \
      --image_size=20 --epochs=15 --workdir=runs/zoo

Expected runtime: about 5 min on 2 shared CPU cores (measured:
docs/notes/zoo.md). Expected result: runs/zoo/{zoo_config.json, tasks.json,
chunks/, metrics.json}; training accuracy near 1 for every task and mean holdout
accuracy well above chance (1 / classes). Rerunning the same command resumes at the
first unfinished chunk; other flags on the same --workdir are refused.

Smoke run (seconds): add --smoke (4 tasks, 10 images per class, 1 epoch).
The settings are ``configs/train_sources.py`` (the ZooConfig defaults); every
short flag is a ZooConfig field (``--num_tasks`` = ``--config.zoo.num_tasks``).
The paper's scale: --num_tasks=500 --max_per_class=0 (all images) on an
accelerator; --distributed for several hosts.
"""
from __future__ import annotations

import dataclasses
import re
import typing

from absl import app, flags
import numpy as np

from experiments import config_cli
from transferjax import cli
from transferjax.config import build
from transferjax.scoring.weak import weak_sources, weak_sources_message
from transferjax.train import ZooConfig, run

FLAGS = flags.FLAGS
_KINDS = {int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string,
          bool: flags.DEFINE_bool}


def _attribute_docs(cls) -> dict[str, str]:
  """``name: text`` of the class docstring's Attributes section, one line each."""
  docs, name = {}, None
  for line in cls.__doc__.split("Attributes:", 1)[-1].splitlines():
    m = re.match(r"^    (\w+): (.*)$", line)
    if m:
      name = m.group(1)
      docs[name] = m.group(2)
    elif name and line.startswith("      "):
      docs[name] += " " + line.strip()
  return docs


def _zoo_aliases() -> dict[str, str]:
  """Every ZooConfig field as a short flag (``--num_tasks``), help from its docstring."""
  docs, hints = _attribute_docs(ZooConfig), typing.get_type_hints(ZooConfig)
  for f in dataclasses.fields(ZooConfig):
    if f.name not in config_cli.SHORT:
      kind = typing.get_args(hints[f.name])[0] if f.default is None else type(f.default)
      config_cli.define(f.name, _KINDS[kind], docs.get(f.name, f.name))
  return {f.name: f"zoo.{f.name}" for f in dataclasses.fields(ZooConfig)}


config_cli.define("smoke", flags.DEFINE_bool,
                  "Tiny run: configs/train_sources_smoke.py (4 tasks, 10 images/class, "
                  "1 epoch).")
config_cli.use("train_sources", {"workdir": "workdir", **_zoo_aliases()},
               selectors={"smoke": lambda on: "train_sources_smoke" if on else None})


def config_from_flags(values=None) -> ZooConfig:
  """The frozen ``ZooConfig`` of the parsed flags (``--config`` and the short ones)."""
  del values  # the flags are absl's global FLAGS
  return build(ZooConfig, config_cli.resolve().zoo, "config.zoo")


def main(argv):
  del argv
  cfg = config_cli.resolve()
  config = build(ZooConfig, cfg.zoo, "config.zoo")
  zoo = run(config, cfg.workdir)
  print(f"zoo of {zoo.num_models} models in {cfg.workdir}: mean train acc "
        f"{zoo.metrics['train_accuracy'].mean():.3f}, mean holdout acc "
        f"{np.nanmean(zoo.metrics['holdout_accuracy']):.3f}")
  warning = weak_sources_message(
      weak_sources(zoo.tasks, zoo.metrics["holdout_accuracy"]), zoo.num_models,
      zoo.config)
  if warning:
    print(warning)


if __name__ == "__main__":
  app.run(cli.guard(main), flags_parser=config_cli.parse_flags)
