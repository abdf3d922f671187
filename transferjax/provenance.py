"""Where a result came from: the code's commit, the library versions, the devices.

Every JSON output that a person may want to re-run (zoo records, rankings,
evaluations, benchmarks) carries ``provenance()`` beside its resolved config.
Nothing here depends on the time of day, so two runs of the same code on the
same machine write identical provenance and resumed outputs stay bit-identical.
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from typing import Any

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "scipy",
             "scikit-learn", "tensorflow-datasets")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
  """The checked-out commit of this package's repository (``+dirty`` when the
  working tree has uncommitted changes), or ``"unknown"`` outside a git checkout."""
  def git(*args: str) -> str:
    return subprocess.run(["git", "-C", _REPO, *args], capture_output=True, text=True,
                          timeout=10, check=True).stdout.strip()
  try:
    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
  except (OSError, subprocess.SubprocessError):
    return "unknown"
  return commit + ("+dirty" if dirty else "")


def versions() -> dict[str, str]:
  """Installed versions of the libraries whose numerics our results depend on."""
  out = {"python": platform.python_version()}
  for name in _PACKAGES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = "not installed"
  return out


def devices() -> dict[str, Any]:
  """The JAX backend and devices this process computes on."""
  import jax
  from transferjax import backend  # pylint: disable=g-import-not-at-top
  devs = jax.devices()
  return {"backend": backend.platform(), "count": len(devs),
          "kinds": sorted({d.device_kind for d in devs}),
          "processes": jax.process_count()}


_RUN: dict[str, Any] = {}


def set_run(*, command: str, config: dict[str, Any], spec: str) -> None:
  """Records the entry point's command and resolved config (``experiments``'
  ``--config``) for every ``provenance()`` this process writes."""
  _RUN.clear()
  _RUN.update(command=command, config_file=spec, config=config)


def run_record() -> dict[str, Any] | None:
  """What ``set_run`` recorded (None in a library call without an entry point)."""
  return dict(_RUN) if _RUN else None


def provenance(config: Any = None) -> dict[str, Any]:
  """``{"config": ..., "commit": ..., "versions": ..., "devices": ..., "run": ...}``.

  ``run`` (present when an entry point resolved its ``--config``) is the
  command line and the entry point's whole resolved config: rerun it with
  ``--config=configs/recorded.py:<this JSON file>``.

  Args:
    config: the fully resolved config of the library call (a dataclass, a
      mapping or None); dataclasses are converted with ``dataclasses.asdict``.
  """
  import dataclasses
  if dataclasses.is_dataclass(config) and not isinstance(config, type):
    try:
      config = dataclasses.asdict(config)
    except TypeError:  # a field that deep-copy cannot handle: keep its text
      config = repr(config)
  record = {"commit": git_commit(), "versions": versions(), "devices": devices()}
  if config is not None:
    record = {"config": config, **record}
  if _RUN:
    record["run"] = run_record()
  return record
