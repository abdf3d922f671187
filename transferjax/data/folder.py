"""A user's image folder, ``folder:PATH``: one sub-folder per class, PNG/JPEG files.

Rows are ordered by class folder name, then by file name within a class (both
sorted), and ``metadata["files"]`` lists the relative paths in that order: a
folder of precomputed source features must follow the same row order.
Images are read with Pillow.
"""
from __future__ import annotations

import collections
import logging
import os

import numpy as np

from transferjax.data.container import Dataset
from transferjax.data.preprocess import resize_keep_channels, to_gray
from transferjax.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_LAYOUT = ("Lay the folder out as PATH/<class name>/<image>.png|.jpg, one "
           "sub-folder per class, at least two classes.")


def list_image_folder(path: str) -> tuple[list[str], list[tuple[str, int]]]:
  """``(class_names, [(relative file path, label), ...])`` in row order."""
  if not os.path.isdir(path):
    raise DataError(f"folder:{path}: no such directory. {_LAYOUT}")
  classes, files = [], []
  for name in sorted(os.listdir(path)):
    sub = os.path.join(path, name)
    if not os.path.isdir(sub) or name.startswith("."):
      continue
    images = sorted(f for f in os.listdir(sub)
                    if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
    if not images:
      continue
    files += [(os.path.join(name, f), len(classes)) for f in images]
    classes.append(name)
  if len(classes) < 2:
    found = f"only class {classes[0]!r}" if classes else "no class sub-folder with images"
    raise DataError(f"folder:{path}: found {found}; a target needs at least two "
                    f"classes. {_LAYOUT}")
  return classes, files


def _read(path: str, color: bool) -> np.ndarray:
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as im:
      return np.asarray(im.convert("RGB" if color else "L"))
  except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
    raise DataError(f"{path}: not a readable PNG/JPEG image ({type(e).__name__}: "
                    f"{e}). Remove or re-save it.") from e


def load_image_folder(path: str, *, image_size: int | None = None, seed: int = 0,
                      color: bool = False) -> Dataset:
  """Loads ``PATH/<class>/<image>`` as a data set.

  Args:
    path: the folder.
    image_size: output side. ``None``: the images' common size when they all
      have one square size; otherwise the smallest side found (never upsampled).
      Non-square images are centre-cropped to a square.
    seed: unused; accepted like every loader's option.
    color: keep RGB ``[n, s, s, 3]`` (for sources that take colour); the
      default converts to gray ``[n, s, s, 1]`` like every other loader.

  Returns:
    Dataset named ``"folder:<basename>"``; ``metadata["files"]`` gives each row's
    relative path and ``metadata["note"]`` says when sizes were mixed.
  """
  del seed
  classes, files = list_image_folder(path)
  arrays = [_read(os.path.join(path, f), color) for f, _ in files]
  shapes = collections.Counter(a.shape[:2] for a in arrays)
  smallest = min(min(s) for s in shapes)
  size = int(image_size) if image_size is not None else smallest
  meta = {"source": os.path.abspath(path), "synthetic": False,
          "files": [f for f, _ in files], "native_size": int(smallest),
          "options": {"image_size": size, "color": bool(color)}}
  if len(shapes) > 1:
    common = ", ".join(f"{w}x{h} ({c})" for (h, w), c in shapes.most_common(4))
    meta["note"] = (f"mixed image sizes ({len(shapes)} sizes: {common}"
                    f"{', ...' if len(shapes) > 4 else ''}); every image was "
                    f"centre-cropped to a square and resized to {size}x{size}")
    logging.warning("folder:%s: %s.", path, meta["note"])
  out = []
  for a in arrays:
    x = a.astype(np.float32)[None] / 255.0
    x = x if x.ndim == 4 else x[..., None]
    out.append(resize_keep_channels(x, size)[0])
  images = np.stack(out)
  if not color:
    images = to_gray(images)
  labels = np.array([label for _, label in files], np.int32)
  return Dataset(images, labels, tuple(classes), f"folder:{os.path.basename(os.path.normpath(path))}",
                 meta)
