"""``--sources=SPEC[,SPEC...]`` -> source groups.

Specs: ``zoo:PATH`` (a trained zoo), ``flax:package.module:fn[@CHECKPOINT]`` (a
factory of ``FlaxModel``s), ``files:FOLDER`` (one ``.npz`` of features per
source). A bare folder is a zoo when it holds ``zoo_config.json`` and a
feature folder when it holds ``.npz`` files.
"""
from __future__ import annotations

import os

from transferjax.errors import ConfigError
from transferjax.sources.base import SourceGroup, unique_names
from transferjax.sources.files import FeatureFiles
from transferjax.sources.flax_model import FlaxGroup, load_flax_models
from transferjax.sources.zoo import ZooGroup

KINDS = ("zoo", "flax", "files")


def parse_source(spec: str) -> SourceGroup:
  """One spec -> its group."""
  kind, sep, arg = spec.partition(":")
  if not sep or kind not in KINDS:
    if os.path.isfile(os.path.join(spec, "zoo_config.json")):
      kind, arg = "zoo", spec
    elif os.path.isdir(spec) and any(f.endswith(".npz") for f in os.listdir(spec)):
      kind, arg = "files", spec
    else:
      raise ConfigError(f"source spec {spec!r}: write zoo:PATH, "
                        "flax:package.module:function[@CHECKPOINT] or files:FOLDER.")
  if not arg:
    raise ConfigError(f"source spec {spec!r}: give the {kind} argument after the colon.")
  if kind == "zoo":
    return ZooGroup.open(arg)
  if kind == "files":
    return FeatureFiles(arg)
  return FlaxGroup(load_flax_models(arg))


def parse_sources(specs: str | list[str]) -> list[SourceGroup]:
  """Comma-separated specs (or a list) -> groups with unique member names."""
  if isinstance(specs, str):
    specs = [s for s in specs.split(",") if s.strip()]
  if not specs:
    raise ConfigError("--sources is empty; give at least one source spec.")
  groups = [parse_source(s.strip()) for s in specs]
  unique_names(groups)
  return groups
