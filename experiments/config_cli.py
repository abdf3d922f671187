"""The one ``--config`` flag of every entry point, and its short aliases.

``--config=configs/<name>.py`` picks an experiment (each entry point has a
default), ``--config.a.b=VALUE`` overrides any field after it (ml_collections'
``config_flags``; the override needs no ``--config`` before it: the entry
point's default is put in front), and ``--config=configs/recorded.py:FILE``
reruns the config recorded in an output (``config.json``, ``evaluation.json``,
``ranking.json``, ...).

The short flags users already type (``--num_tasks=500``, ``--target=faces``)
are aliases: each is defined once here (``SHORT``: kind and help) and an entry
point maps the ones it takes onto its config's fields (``use``). An alias that
is given on the command line wins over the config file and the dotted
overrides; one that is not given changes nothing.
"""
from __future__ import annotations

import os
import shlex
import sys
from typing import Any, Callable, Mapping, Sequence

from absl import flags
from ml_collections import config_flags

from transferjax import cli
from transferjax import config as config_lib
from transferjax import provenance
from transferjax.errors import ConfigError

flags.disclaim_key_flags()  # flags defined here belong to the entry point that asks

FLAGS = flags.FLAGS
CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/<name>.py; default: the entry "
    "point's). Override any field after it with --config.a.b=VALUE; rerun a "
    "recorded run with --config=configs/recorded.py:PATH/config.json.",
    lock_config=True)


def _zero_none(v):
  return v or None


def as_tuple(v):
  return tuple(v)


def _int_tuple(v):
  return tuple(int(x) for x in v)


# name: (absl DEFINE function, help, value -> config value). Defaults are None:
# the config file holds the defaults, a short flag only says "the user set this".
SHORT: dict[str, tuple[Callable, str, Callable | None]] = {
    "workdir": (flags.DEFINE_string, "Output folder.", None),
    "zoo": (flags.DEFINE_string, "Workdir of a trained zoo.", None),
    "target": (flags.DEFINE_string, "Target spec: mnist:A,B, digits:A,B, spots, "
               "faces, npz:PATH[:A,B], folder:PATH.", None),
    "fraction": (flags.DEFINE_float, "Labeled share of the target data (D_a); the "
                 "paper's 5%.", None),
    "num_labeled": (flags.DEFINE_integer, "Absolute |D_a| (overrides --fraction; 0 = "
                    "use --fraction).", _zero_none),
    "shots_per_class": (flags.DEFINE_integer, "Labeled target images per class.", None),
    "num_splits": (flags.DEFINE_integer, "Target splits the ground truth averages over.",
                   None),
    "num_seeds": (flags.DEFINE_integer, "Fine-tuning seeds per source and split.", None),
    "max_epochs": (flags.DEFINE_integer, "Fine-tuning / target-net epoch cap.", None),
    "patience": (flags.DEFINE_integer, "Early-stopping patience (epochs).", None),
    "ft_batch_size": (flags.DEFINE_integer, "Fine-tuning minibatch size.", None),
    "ft_learning_rate": (flags.DEFINE_float, "Fine-tuning Adam learning rate.", None),
    "budgets": (flags.DEFINE_list, "Fixed-budget epochs also reported.", _int_tuple),
    "freeze_transferred": (flags.DEFINE_bool, "Keep the transferred conv layers frozen.",
                           None),
    "protocol": (flags.DEFINE_string, "Scoring protocol: crossfit (out-of-fold T on "
                 "all of D_a) or paper (D_v only).", None),
    "folds": (flags.DEFINE_integer, "Cross-fitting folds (>= 3).", None),
    "method": (flags.DEFINE_string, "Primary ranking method.", None),
    "methods": (flags.DEFINE_list, "Ranking methods (comma-separated).", as_tuple),
    "k": (flags.DEFINE_integer, "Neighbours of the k-NN estimators.", None),
    "metric": (flags.DEFINE_enum, "Norm within F: euclidean or max.", None),
    "f_scale": (flags.DEFINE_enum, "Scale of the F block: rms or none (RankConfig).",
                None),
    "seed": (flags.DEFINE_integer, "Root seed.", None),
    "fractions": (flags.DEFINE_list, "Fig. 8 target fractions, e.g. 0.02,0.05,0.1.",
                  lambda v: tuple(float(x) for x in v)),
    # train_sources / paper / demo / benchmark: the zoo.
    "num_sources": (flags.DEFINE_integer, "Source CNNs in the zoo.", None),
    "num_tasks": (flags.DEFINE_integer, "Source CNNs in the zoo (one per task).", None),
    "zoo_epochs": (flags.DEFINE_integer, "Source training epochs.", None),
    "pool": (flags.DEFINE_string, "Source pool (load_dataset name).", None),
    "max_per_class": (flags.DEFINE_integer, "Source images per class cap (0: all).",
                      _zero_none),
    "max_classes": (flags.DEFINE_integer, "Most classes per source task (0: all of "
                    "the pool's, the paper's task sizes).", _zero_none),
}
_ENUMS = {"metric": ["euclidean", "max"], "f_scale": ["rms", "none"]}

_STATE: dict[str, Any] = {"default": None, "aliases": {}, "selectors": {},
                          "inserted": False, "entry": None}


def define(name: str, kind: Callable, help_text: str,
           convert: Callable | None = None, **kwargs: Any) -> None:
  """Adds an entry-point-specific short flag to ``SHORT`` (e.g. ``--estimator``)."""
  SHORT[name] = (kind, help_text, convert)
  if "enum_values" in kwargs:
    _ENUMS[name] = kwargs["enum_values"]


def use(default: str, aliases: Mapping[str, str | Sequence[str]],
        selectors: Mapping[str, Callable[[Any], str | None]] | None = None,
        key_flags: Sequence[str] | None = None) -> None:
  """Declares an entry point's config and short flags.

  Args:
    default: its config (``configs/<default>.py``).
    aliases: short flag -> dotted field(s) of the config it sets.
    selectors: short flag -> function of its value returning the config name it
      picks instead of ``default`` (``--smoke``, ``--experiment=spots``), or
      None for "no change". A flag may be both a selector and in ``SHORT``.
    key_flags: the short flags ``--helpshort`` lists (default: all of them).
  """
  _STATE.update(default=default, aliases=dict(aliases), selectors=dict(selectors or {}))
  flags.declare_key_flag("config")
  for name in list(aliases) + [s for s in (selectors or {}) if s in SHORT]:
    key = key_flags is None or name in key_flags
    if name in FLAGS:
      if key:
        flags.declare_key_flag(name)
      continue
    kind, help_text, _ = SHORT[name]
    paths = aliases.get(name, ())
    paths = (paths,) if isinstance(paths, str) else tuple(paths)
    where = f" (--config.{paths[0]})" if paths else ""
    extra = {"enum_values": _ENUMS[name]} if name in _ENUMS else {}
    if not key:  # accepted, but listed by --helpfull only
      extra["module_name"] = __name__
    kind(name, None, help=help_text + where, **extra)


def _config_flag_given(argv: Sequence[str]) -> bool:
  return any(a == "--config" or a.startswith("--config=") for a in argv)


def parse_flags(argv: list[str]) -> list[str]:
  """``app.run``'s ``flags_parser``: the entry point's config goes in front of
  dotted overrides given without ``--config``; bad flags are one line (cli)."""
  argv = list(argv)
  if (_STATE["default"] and not _config_flag_given(argv)
      and any(a.startswith("--config.") for a in argv)):
    argv.insert(1, f"--config={config_path(_STATE['default'])}")
    _STATE["inserted"] = True
  _STATE["entry"] = argv
  return cli.parse_flags(argv)


def config_path(name: str) -> str:
  """The path of ``configs/<name>.py`` as a user would type it (repo-relative)."""
  path = os.path.join(config_lib.CONFIG_DIR, name + ".py")
  rel = os.path.relpath(path)
  return rel if not rel.startswith("..") else path


def _set(cfg, path: str, value: Any) -> None:
  *parents, leaf = path.split(".")
  node = cfg
  for p in parents:
    node = node[p]
  node[leaf] = value


def _overrides() -> dict[str, Any]:
  """The dotted ``--config.a.b=V`` overrides given on the command line."""
  return {name[len("config."):]: FLAGS[name].value for name in FLAGS
          if name.startswith("config.") and FLAGS[name].present}


def _comma_split(value: Any) -> Any:
  """``("a,b",)`` -> ``("a", "b")``: config_flags reads ``--config.x=a,b`` of a
  tuple field as one string; the short flags' ``a,b`` is meant."""
  if (isinstance(value, tuple) and len(value) == 1 and isinstance(value[0], str)
      and "," in value[0]):
    return tuple(v.strip() for v in value[0].split(","))
  return value


def _split_commas(cfg) -> None:
  for path in _overrides():
    *parents, leaf = path.split(".")
    node = cfg
    for p in parents:
      node = node[p]
    node[leaf] = _comma_split(node[leaf])


def resolve():
  """The entry point's resolved ConfigDict: file, dotted overrides, short flags.

  Also records it (with the command) for ``provenance`` so every output written
  by this run says how to rerun it.
  """
  given = FLAGS["config"].present and not _STATE["inserted"]
  chosen = None
  for name, pick in _STATE["selectors"].items():
    if name in FLAGS and FLAGS[name].present:
      chosen = pick(FLAGS[name].value) or chosen
  if chosen and given:
    raise ConfigError(f"--config={FLAGS['config'].config_filename} and a short flag "
                      f"that picks configs/{chosen}.py were both given; give one.")
  if FLAGS["config"].present and not chosen:
    spec = FLAGS["config"].config_filename
    try:
      cfg = CONFIG.value
      list(cfg.keys())  # a file that failed to load raises on first use
    except Exception as e:  # pylint: disable=broad-except
      path = spec.partition(":")[0]
      if not os.path.isfile(path):
        raise ConfigError(f"--config={spec}: no such file; the experiments are "
                          f"configs/<name>.py for <name> in "
                          f"{', '.join(config_lib.available())}.") from None
      if isinstance(e, ConfigError):
        raise
      raise ConfigError(f"--config={spec}: cannot load it: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
                        ) from None
    _split_commas(cfg)
  else:
    spec = config_path(chosen or _STATE["default"])
    cfg = config_lib.load(spec)
    for path, value in _overrides().items():
      _set(cfg, path, _comma_split(value))
  for name, paths in _STATE["aliases"].items():
    if FLAGS[name].present:
      convert = SHORT[name][2] or (lambda v: v)
      for path in ((paths,) if isinstance(paths, str) else paths):
        try:
          _set(cfg, path, convert(FLAGS[name].value))
        except (TypeError, ValueError) as e:
          raise ConfigError(f"--{name}={FLAGS[name].value!r} does not fit "
                            f"config.{path}: {e}") from None
  if os.path.basename(spec.partition(":")[0]) == "recorded.py":
    # Record the file the recorded run started from: a rerun of a rerun works.
    spec = _recorded_base(spec.partition(":")[2])
  provenance.set_run(command=command(), config=config_lib.plain(cfg), spec=spec)
  return cfg


def _recorded_base(path: str) -> str:
  import json  # pylint: disable=g-import-not-at-top
  with open(path) as f:
    record = json.load(f)
  return (record.get("run") or record["provenance"]["run"])["config_file"]


def command() -> str:
  """The command line of this run, as typed (``python -m <module> ...``)."""
  argv = [a for a in (_STATE["entry"] or sys.argv)]
  if argv and _STATE["inserted"]:
    argv = [argv[0]] + argv[2:]
  module = sys.modules["__main__"].__spec__
  head = (["python", "-m", module.name] if module is not None and module.name
          else ["python", *argv[:1]])
  return shlex.join(head + list(argv[1:]))


def rerun_command(config_json: str) -> str:
  """The command that reruns a recorded config file."""
  module = sys.modules["__main__"].__spec__
  name = module.name if module is not None else "<module>"
  return shlex.join(["python", "-m", name,
                     f"--config={config_path('recorded')}:{config_json}"])
