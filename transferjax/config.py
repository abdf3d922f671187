"""Experiment configs: our frozen dataclasses behind ``ml_collections`` ConfigDicts.

The typed configs stay the frozen dataclasses (``ZooConfig``, ``FitConfig``,
``StudyConfig``, ...): the library's ``run`` functions take them. An experiment
in ``configs/`` is a ``get_config()`` returning a ConfigDict built from those
dataclasses (``to_config``), so every field is there with its type and the
command line can override any of them (``--config.zoo.num_tasks=32``);
``build`` turns a section back into the dataclass, refusing unknown fields by
name. ``load`` reads a config file (``configs/demo.py[:ARG]``) without the
command line (tests, ``configs/recorded.py``).
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import os
import types
import typing
from typing import Any, Mapping

import ml_collections
from ml_collections import config_dict

from transferjax.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO, "configs")


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
  return typing.get_type_hints(cls)


def _unwrap_optional(hint: Any) -> Any:
  """``int | None`` -> ``int``; anything else unchanged."""
  if typing.get_origin(hint) in (typing.Union, types.UnionType):
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) == 1:
      return args[0]
  return hint


def to_config(value: Any) -> Any:
  """A dataclass instance or mapping as a ConfigDict (recursively; lists -> tuples).

  A dataclass field that is None becomes a typed placeholder (its annotation's
  type), so the command line can still set it (``--config.study.num_labeled=24``).
  """
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    hints = _hints(type(value))
    out = ml_collections.ConfigDict()
    for f in dataclasses.fields(value):
      v = getattr(value, f.name)
      if v is None:
        kind = _unwrap_optional(hints[f.name])
        out[f.name] = config_dict.placeholder(kind if isinstance(kind, type) else object)
      else:
        out[f.name] = to_config(v)
    return out
  if isinstance(value, Mapping):
    out = ml_collections.ConfigDict()
    for k, v in value.items():
      out[k] = to_config(v)
    return out
  if isinstance(value, list):
    return tuple(to_config(v) for v in value)
  return value


def section(cls: type, drop: tuple[str, ...] = (), **values: Any
            ) -> ml_collections.ConfigDict:
  """``to_config(cls(**values))`` without the fields in ``drop`` (fields the
  entry point fills, e.g. folders derived from ``workdir``; a required field
  that is dropped needs no value)."""
  required = {f.name: "" for f in dataclasses.fields(cls)
              if f.name in drop and f.default is dataclasses.MISSING
              and f.default_factory is dataclasses.MISSING}
  out = to_config(cls(**{**required, **values}))
  for name in drop:
    del out[name]
  return out


def plain(cfg: Any) -> Any:
  """A ConfigDict (or anything of mappings/sequences) as JSON-ready Python."""
  if isinstance(cfg, ml_collections.ConfigDict):
    cfg = cfg.to_dict()
  if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
    cfg = dataclasses.asdict(cfg)
  if isinstance(cfg, Mapping):
    return {k: plain(v) for k, v in cfg.items()}
  if isinstance(cfg, (list, tuple)):
    return [plain(v) for v in cfg]
  return cfg


def _unknown(where: str, key: str, names) -> ConfigError:
  close = difflib.get_close_matches(key, list(names), n=1)
  hint = f"did you mean {where}.{close[0]}? " if close else ""
  return ConfigError(f"{where}.{key}: no such field; {hint}"
                     f"fields of {where}: {', '.join(sorted(names))}.")


def _value(hint: Any, value: Any, where: str) -> Any:
  hint = _unwrap_optional(hint)
  if value is None:
    return None
  if dataclasses.is_dataclass(hint) and isinstance(hint, type):
    if isinstance(value, hint):
      return value
    if not isinstance(value, (Mapping, ml_collections.ConfigDict)):
      raise ConfigError(f"{where}: expected a section of {hint.__name__} fields, "
                        f"got {value!r}.")
    return build(hint, value, where)
  if typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)):
    args = typing.get_args(hint)
    inner = args[0] if args else Any
    return tuple(_value(inner, v, where) for v in value)
  if isinstance(value, ml_collections.ConfigDict):
    return value.to_dict()
  if hint is float and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if hint in (int, float, str, bool) and not isinstance(value, hint):
    raise ConfigError(f"{where}={value!r}: expected {hint.__name__}; set it with "
                      f"--config.{where.split('.', 1)[-1]}=<{hint.__name__}>.")
  return value


def build(cls: type, cfg: Any, where: str = "config", **extra: Any) -> Any:
  """The frozen dataclass ``cls`` from a ConfigDict/mapping section.

  Fields missing from ``cfg`` take the dataclass's defaults; ``extra`` adds
  fields the section leaves to the entry point (e.g. derived folders).

  Raises:
    ConfigError: a key that is no field of ``cls`` (named, with the closest
      field), or a value of the wrong type.
  """
  values = cfg.to_dict() if isinstance(cfg, ml_collections.ConfigDict) else dict(cfg)
  names = {f.name for f in dataclasses.fields(cls) if f.init}
  for key in values:
    if key not in names:
      raise _unknown(where, key, names)
  hints = _hints(cls)
  kwargs = {k: _value(hints[k], v, f"{where}.{k}") for k, v in values.items()}
  kwargs.update(extra)
  return cls(**kwargs)


def load(spec: str) -> ml_collections.ConfigDict:
  """The ConfigDict of ``spec`` = ``PATH.py`` or ``PATH.py:ARG`` (its ``get_config``).

  A bare name (``demo``) means ``configs/demo.py``.
  """
  path, _, arg = spec.partition(":")
  if not path.endswith(".py"):
    path = os.path.join(CONFIG_DIR, path + ".py")
  if not os.path.isfile(path):
    raise ConfigError(f"No config file {path!r}; the experiments are in "
                      f"{CONFIG_DIR}: {', '.join(available())}.")
  module_spec = importlib.util.spec_from_file_location("_transferjax_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def available() -> list[str]:
  """Names of the configs in ``configs/``."""
  if not os.path.isdir(CONFIG_DIR):
    return []
  return sorted(f[:-3] for f in os.listdir(CONFIG_DIR)
                if f.endswith(".py") and not f.startswith("_"))


def overlay(base: ml_collections.ConfigDict, values: Mapping[str, Any],
            where: str = "config") -> ml_collections.ConfigDict:
  """``base`` with ``values`` (a recorded, JSON-plain config) written over it.

  Keeps ``base``'s types (JSON lists become tuples); a key that ``base`` lacks
  is refused by name.
  """
  for key, value in values.items():
    if key not in base:
      raise _unknown(where, key, list(base.keys()))
    if isinstance(base[key], ml_collections.ConfigDict) and isinstance(value, Mapping):
      overlay(base[key], value, f"{where}.{key}")
    else:
      base[key] = to_config(value)
  return base
