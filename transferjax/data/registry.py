"""The one public door to every data set: ``load_dataset(name, **options)``.

``"a+b"`` names a mixed pool: each part loaded with the same options, then
``combine_pools`` (classes ``"<part>/<class>"``; source tasks draw each task
from one part). A ``tfds:``/``npz:`` part must be the last one (a path may hold
``+``).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from transferjax.data import builtin, external, folder, scenes, spots, testbed_pools
from transferjax.data.container import Dataset
from transferjax.data.source_tasks import combine_pools
from transferjax.errors import DataError

LOADERS: dict[str, Callable[..., Dataset]] = {
    "mnist": builtin.load_mnist,
    "scenes": scenes.load_scenes,
    "digits": builtin.load_digits,
    "faces": builtin.load_faces,
    "spots": spots.load_spots,
    "scenes_pool": testbed_pools.load_scenes_pool,
    "scenes_heldout": testbed_pools.load_scenes_heldout,
    "mnist04": testbed_pools.load_mnist04,
}
# Names with an argument after the colon.
PREFIX_LOADERS: dict[str, Callable[..., Dataset]] = {
    "tfds": external.load_tfds,
    "npz": external.load_npz_dataset,
    "folder": folder.load_image_folder,
}
VALID_NAMES = tuple(LOADERS) + ("tfds:NAME", "npz:PATH", "folder:PATH",
                                 "A+B (mixed pool)")


def _parts(name: str) -> list[str]:
  """``[name]``, or the parts of a mixed-pool name ``"a+b+..."``."""
  if not isinstance(name, str):
    raise DataError(f"Data set name must be a string, got {name!r}.")
  if name in LOADERS or name.partition(":")[0] in PREFIX_LOADERS or "+" not in name:
    return [name]
  head, _, tail = name.partition("+")
  return [head] + _parts(tail)


def _resolve(name: str) -> tuple[Callable[..., Dataset], tuple[Any, ...]]:
  if not isinstance(name, str):
    raise DataError(f"Data set name must be a string, got {name!r}.")
  if name in LOADERS:
    return LOADERS[name], ()
  prefix, sep, arg = name.partition(":")
  if sep and prefix in PREFIX_LOADERS:
    if not arg:
      raise DataError(f"{name!r}: give the {prefix} argument after the colon, "
                      f"e.g. {'tfds:mnist' if prefix == 'tfds' else 'npz:/data/x.npz'}.")
    return PREFIX_LOADERS[prefix], (arg,)
  raise DataError(f"Unknown data set {name!r}. Valid names: {', '.join(VALID_NAMES)}.")


def dataset_options(name: str) -> dict[str, Any]:
  """The options ``name`` accepts, with their defaults (a mixed pool: the
  options every part accepts, defaults of the first part)."""
  options = None
  for part in _parts(name):
    loader, _ = _resolve(part)
    mine = {k: p.default for k, p in inspect.signature(loader).parameters.items()
            if p.kind == inspect.Parameter.KEYWORD_ONLY}
    options = mine if options is None else {k: v for k, v in options.items()
                                            if k in mine}
  return options


def load_dataset(name: str, **options: Any) -> Dataset:
  """Loads a data set by registry name.

  Args:
    name: ``mnist``, ``scenes``, ``digits``, ``faces``, ``spots`` (synthetic),
      ``tfds:NAME``, ``npz:PATH``, or ``"a+b+..."`` of those: a mixed pool
      (``combine_pools`` of the parts, each loaded with ``options``).
    **options: loader options; every loader takes ``image_size`` (default 20,
      9 for spots, native size for npz) and ``seed``. See
      ``dataset_options(name)`` for the rest (a mixed pool: those every
      part accepts).

  Returns:
    A ``Dataset`` of float32 ``[n, s, s, 1]`` images in ``[0, 1]``.
  """
  accepted = dataset_options(name)
  unknown = sorted(set(options) - set(accepted))
  if unknown:
    raise DataError(f"Data set {name!r} has no option(s) {unknown}; it accepts "
                    f"{', '.join(sorted(accepted))}.")
  parts = _parts(name)
  if len(parts) > 1:
    return combine_pools([load_dataset(p, **options) for p in parts])
  loader, args = _resolve(name)
  return loader(*args, **options)


def display_name(ds: Dataset) -> str:
  """The name to print: e.g. ``"spots (synthetic)"`` for the synthetic set."""
  return str(ds.metadata.get("display_name", ds.name))
