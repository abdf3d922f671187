"""Precomputed features as sources: ``files:FOLDER`` of one ``.npz`` per source.

Each ``<name>.npz`` holds ``features`` ``[N, d]`` and optionally ``logits``
``[N, c]``, one row per target image in the target's row order (for
``folder:PATH`` targets: class folders sorted, then file names sorted; the
order is ``Dataset.metadata["files"]``). This is how features from another
framework (PyTorch, TensorFlow) are ranked. Files are read with
``allow_pickle=False``, one at a time, when the streaming scorer reaches them.
"""
from __future__ import annotations

import os
import zipfile
from typing import Sequence

import numpy as np

from transferjax import io as tio
from transferjax.errors import DataError
from transferjax.sources.base import SourceGroup, SourceInfo

_FIX = ("Save each source as np.savez(FOLDER/<name>.npz, features=float [N, d], "
        "logits=float [N, c] (optional)), one row per target image in the "
        "target's order.")


def _npz_shape(path: str, key: str) -> tuple[int, ...] | None:
  """Shape of array ``key`` in an ``.npz`` from its header (no data read)."""
  try:
    with zipfile.ZipFile(path) as zf:
      if f"{key}.npy" not in zf.namelist():
        return None
      with zf.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(f)
  except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
    raise DataError(f"{path}: not a readable .npz ({type(e).__name__}: {e}). {_FIX}") from e
  if dtype.hasobject:
    raise DataError(f"{path}: {key} is an object array; give numbers. {_FIX}")
  return tuple(shape)


class FeatureFiles(SourceGroup):
  """A folder of ``<source name>.npz`` feature files (sorted by name)."""

  def __init__(self, folder: str):
    if not os.path.isdir(folder):
      raise DataError(f"files:{folder}: no such folder. {_FIX}")
    self.paths = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                        if f.endswith(".npz") and not f.startswith("."))
    if not self.paths:
      raise DataError(f"files:{folder}: no .npz files in it. {_FIX}")
    self.folder = folder
    shapes = []
    for p in self.paths:
      f = _npz_shape(p, "features")
      if f is None:
        raise DataError(f"{p}: has no 'features' array. {_FIX}")
      lg = _npz_shape(p, "logits")
      if len(f) != 2 or (lg is not None and (len(lg) != 2 or lg[0] != f[0] or lg[1] < 2)):
        raise DataError(f"{p}: features {f}" + (f" and logits {lg}" if lg else "")
                        + f" must be [N, d] and [N, c >= 2]. {_FIX}")
      shapes.append((f, lg))
    self._shapes = shapes
    self.infos = [SourceInfo(name=os.path.basename(p)[:-4], kind="files",
                             num_classes=None if lg is None else int(lg[1]))
                  for p, (_, lg) in zip(self.paths, shapes)]

  @property
  def num_rows(self) -> set[int]:
    return {f[0] for f, _ in self._shapes}

  def output_shapes(self, num_rows):
    rows = {}
    for p, (f, _) in zip(self.paths, self._shapes):
      rows.setdefault(f[0], []).append(os.path.basename(p))
    if len(rows) > 1:
      listing = "; ".join(f"{n} rows: {', '.join(v[:3])}{' ...' if len(v) > 3 else ''}"
                          for n, v in sorted(rows.items()))
      raise DataError(f"files:{self.folder}: the feature files have different "
                      f"numbers of rows ({listing}); every source must have one "
                      f"row per target image ({num_rows}). {_FIX}")
    (n,) = rows
    if n != num_rows:
      raise DataError(f"files:{self.folder}: the feature files have {n} rows but the "
                      f"target has {num_rows} images; they must be computed on "
                      f"exactly the target's images, in its order. {_FIX}")
    return [(int(f[1]), None if lg is None else int(lg[1])) for f, lg in self._shapes]

  def outputs(self, members: Sequence[int], images, rows, *, allow_upsample=False):
    del images, allow_upsample
    out = []
    for i in members:
      arrays = tio.load_npz(self.paths[i])
      logits = arrays.get("logits")
      out.append((arrays["features"][rows],
                  None if logits is None else logits[rows]))
    return out


def write_feature_files(folder: str, groups: Sequence[SourceGroup], images: np.ndarray,
                        *, allow_upsample: bool = False) -> list[str]:
  """Exports sources' outputs on all ``images`` as a ``files:`` folder.

  Args:
    folder: output folder (one ``<name>.npz`` per source, written atomically).
    groups: source groups (zoo, Flax) to export.
    images: the target's images ``[N, h, w, c]`` in ``[0, 1]``, in its row order.
    allow_upsample: as in ``prepare_images``.

  Returns:
    The paths written.
  """
  rows = np.arange(len(images))
  paths = []
  for g in groups:
    outs = g.outputs(range(len(g)), images, rows, allow_upsample=allow_upsample)
    for info, (feats, logits) in zip(g.infos, outs):
      arrays = {"features": np.asarray(feats, np.float32)}
      if logits is not None:
        arrays["logits"] = np.asarray(logits, np.float32)
      path = os.path.join(folder, f"{info.name}.npz")
      tio.save_npz(path, **arrays)
      paths.append(path)
  return paths
