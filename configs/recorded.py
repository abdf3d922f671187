"""Rerun a recorded run: ``--config=configs/recorded.py:PATH``.

PATH is a ``config.json`` an entry point wrote beside its outputs, or any JSON
output whose ``provenance`` has a ``run`` (evaluation.json, ranking.json,
benchmark.json, the zoo's provenance.json, ...). The recorded values are
written over the config file the run started from, so types and every field
not recorded stay as that file has them. Reading it runs no code from PATH.
"""
import json
import os

from transferjax.config import load, overlay
from transferjax.errors import ConfigError


def get_config(path):
  try:
    with open(path) as f:
      record = json.load(f)
  except (OSError, ValueError) as e:
    raise ConfigError(f"Cannot read the recorded config {path!r}: {e}") from None
  run = record.get("run") or record.get("provenance", {}).get("run")
  if not run:
    raise ConfigError(f"{path} records no run config (no 'run' in it or its "
                      "'provenance'); it was written by a library call, not an "
                      "entry point. Rerun with the entry point's flags instead.")
  base = run["config_file"].partition(":")[0]
  if not os.path.isabs(base) and not os.path.exists(base):
    base = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        base)
  return overlay(load(base), run["config"])
