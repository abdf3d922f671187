"""``scenes``: an offline stand-in for Places built from real photographs.

The photographs that ship with scikit-image (``skimage.data``) and scikit-learn
(``load_sample_images``) are converted to gray and each is cut into a
``grid[0] x grid[1]`` grid of regions; every region is one class. A sample is a
random square crop inside its region, with side uniform in 35-100 % of the
region's shorter side, resized (anti-aliased) to ``image_size``. The default 19
photos x 3x3 regions give 171 classes; 100 crops per class give 17,100 images.

Generation takes seconds, so the result is cached as a pickle-free ``.npz``
keyed by every option (see ``cache_path``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Callable, Sequence

import numpy as np
import skimage.transform

from transferjax import io
from transferjax.data.container import Dataset
from transferjax.data.preprocess import to_gray
from transferjax.errors import DataError

# Bump when the generator changes, so stale caches are not reused.
_GENERATOR_VERSION = 1
_MIN_SCALE, _MAX_SCALE = 0.35, 1.0


def _skimage(name: str) -> Callable[[], np.ndarray]:
  def load():
    import skimage.data  # pylint: disable=g-import-not-at-top
    return getattr(skimage.data, name)()
  return load


def _motorcycle() -> np.ndarray:
  import skimage.data  # pylint: disable=g-import-not-at-top
  return skimage.data.stereo_motorcycle()[0]  # The left view.


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
  def load():
    from sklearn.datasets import load_sample_images  # pylint: disable=g-import-not-at-top
    bunch = load_sample_images()
    for path, image in zip(bunch.filenames, bunch.images):
      if os.path.basename(path) == filename:
        return image
    raise DataError(f"scikit-learn sample image {filename!r} not found.")
  return load


# Every real photograph checked to load offline (scikit-image 0.26, sklearn 1.9).
# The order is fixed: a photo's crops are seeded by its index here, so they do
# not change when other photos are added to or dropped from a run.
# Left out: synthetic pictures (checkerboard, colorwheel, logo, binary_blobs,
# horse silhouette, shepp_logan_phantom), `cat` (the same picture as
# `chelsea`), the 102-px `microaneurysms`, and the images that need pooch
# downloads (brain, eagle, lily, kidney, skin, ...).
PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "brick": _skimage("brick"),
    "camera": _skimage("camera"),
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "coins": _skimage("coins"),
    "grass": _skimage("grass"),
    "gravel": _skimage("gravel"),
    "hubble_deep_field": _skimage("hubble_deep_field"),
    "immunohistochemistry": _skimage("immunohistochemistry"),
    "moon": _skimage("moon"),
    "page": _skimage("page"),
    "retina": _skimage("retina"),
    "rocket": _skimage("rocket"),
    "text": _skimage("text"),
    "cell": _skimage("cell"),
    "clock": _skimage("clock"),
    "china": _sklearn("china.jpg"),
    "flower": _sklearn("flower.jpg"),
    "motorcycle": _motorcycle,
}
# The default set: the 19 photos of the feasibility probe (171 classes at 3x3).
DEFAULT_PHOTOS: tuple[str, ...] = tuple(p for p in PHOTOS if p != "motorcycle")


def default_cache_dir() -> str:
  """``$TRANSFERJAX_CACHE`` or ``~/.cache/transferjax``."""
  return os.environ.get("TRANSFERJAX_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "transferjax")


def load_photo(name: str) -> np.ndarray:
  """One catalogue photo as float32 gray ``[h, w]`` in ``[0, 1]``."""
  if name not in PHOTOS:
    raise DataError(f"Unknown scenes photo {name!r}; choose from "
                    f"{', '.join(PHOTOS)}.")
  image = np.asarray(PHOTOS[name]())
  if image.dtype == np.uint8:
    image = image.astype(np.float64) / 255.0
  image = image.astype(np.float64)
  return to_gray(image[None])[0, ..., 0]


def _region_edges(length: int, parts: int) -> np.ndarray:
  return np.linspace(0, length, parts + 1).round().astype(int)


def _crops(photo: np.ndarray, bounds: tuple[int, int, int, int],
           num: int, size: int, rng: np.random.Generator) -> np.ndarray:
  """``num`` random square crops inside ``bounds = (top, bottom, left, right)``.

  Returns:
    float32 ``[num, size, size]``.
  """
  top, bottom, left, right = bounds
  short = min(bottom - top, right - left)
  sides = np.maximum(2, np.round(
      rng.uniform(_MIN_SCALE, _MAX_SCALE, num) * short).astype(int))
  out = np.empty((num, size, size), np.float32)
  for j, side in enumerate(sides):
    y = top + rng.integers(0, bottom - top - side + 1)
    x = left + rng.integers(0, right - left - side + 1)
    out[j] = skimage.transform.resize(
        photo[y:y + side, x:x + side], (size, size), order=1, mode="reflect",
        anti_aliasing=side > size, preserve_range=True)
  return out


def cache_key(options: dict) -> str:
  """A stable hash of the generator version and every option."""
  text = json.dumps({"version": _GENERATOR_VERSION, **options}, sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(cache_dir: str, options: dict) -> str:
  return os.path.join(cache_dir, f"scenes-{cache_key(options)}.npz")


def _validate(image_size, samples_per_class, grid, photos):
  if int(image_size) != image_size or image_size < 2:
    raise DataError(f"scenes: image_size must be an integer >= 2, got {image_size!r}.")
  if int(samples_per_class) != samples_per_class or samples_per_class < 1:
    raise DataError("scenes: samples_per_class must be a positive integer, got "
                    f"{samples_per_class!r}.")
  if (len(grid) != 2 or any(int(g) != g or g < 1 for g in grid)):
    raise DataError(f"scenes: grid must be two positive integers (rows, cols), "
                    f"got {grid!r}; e.g. grid=(3, 3).")
  unknown = [p for p in photos if p not in PHOTOS]
  if unknown or not photos:
    raise DataError(f"scenes: unknown photos {unknown}; choose from "
                    f"{', '.join(PHOTOS)}.")
  if len(set(photos)) != len(photos):
    raise DataError(f"scenes: photos listed twice in {list(photos)}.")


def generate_scenes(*, image_size: int, samples_per_class: int,
                    grid: tuple[int, int], seed: int,
                    photos: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """Builds the crops (no caching).

  Returns:
    ``(images float32 [n, s, s], labels int32 [n], class_names)``; class
    ``k`` is photo ``k // (rows * cols)``, region ``k % (rows * cols)``.
  """
  rows, cols = grid
  images, labels, names = [], [], []
  for name in photos:
    photo = load_photo(name)
    photo_index = list(PHOTOS).index(name)
    r_edges = _region_edges(photo.shape[0], rows)
    c_edges = _region_edges(photo.shape[1], cols)
    if min(np.diff(r_edges).min(), np.diff(c_edges).min()) < 4:
      raise DataError(f"scenes: photo {name!r} ({photo.shape[0]}x{photo.shape[1]})"
                      f" is too small for a {rows}x{cols} grid; use a coarser grid.")
    for r in range(rows):
      for c in range(cols):
        rng = np.random.default_rng([seed, photo_index, r, c])
        bounds = (r_edges[r], r_edges[r + 1], c_edges[c], c_edges[c + 1])
        images.append(_crops(photo, bounds, samples_per_class, image_size, rng))
        labels.append(np.full(samples_per_class, len(names), np.int32))
        names.append(f"{name}/r{r}c{c}")
  return (np.clip(np.concatenate(images), 0.0, 1.0), np.concatenate(labels), names)


def load_scenes(*, image_size: int = 20, samples_per_class: int = 100,
                grid: Sequence[int] = (3, 3), seed: int = 0,
                photos: Sequence[str] | None = None,
                cache_dir: str | None = None, use_cache: bool = True) -> Dataset:
  """The scenes pool (cached).

  Args:
    image_size: side of the crops after resizing.
    samples_per_class: crops per region (class).
    grid: ``(rows, cols)`` regions per photo.
    seed: crop seed; region ``(r, c)`` of catalogue photo ``p`` uses
      ``np.random.default_rng([seed, p, r, c])``.
    photos: photo names (default ``DEFAULT_PHOTOS``, 19 photos).
    cache_dir: cache folder (default ``$TRANSFERJAX_CACHE`` or
      ``~/.cache/transferjax``).
    use_cache: read/write the cache (False always regenerates, writes nothing).

  Returns:
    Dataset with ``len(photos) * rows * cols`` classes named like
    ``"astronaut/r0c1"`` and ``samples_per_class`` images each.
  """
  photos = tuple(DEFAULT_PHOTOS if photos is None else photos)
  grid = tuple(grid)
  _validate(image_size, samples_per_class, grid, photos)
  options = {"image_size": int(image_size), "samples_per_class": int(samples_per_class),
             "grid": [int(g) for g in grid], "seed": int(seed), "photos": list(photos)}
  path = cache_path(cache_dir or default_cache_dir(), options)
  arrays = None
  if use_cache and os.path.exists(path):
    try:
      arrays = io.load_npz(path)
      n = len(photos) * grid[0] * grid[1] * samples_per_class
      if (arrays["images"].shape != (n, image_size, image_size)
          or arrays["labels"].shape != (n,)):
        raise ValueError("unexpected shapes")
    except Exception as e:  # pylint: disable=broad-except
      # A damaged cache is only a cache: rebuild it rather than fail.
      logging.warning("scenes: ignoring unreadable cache %s (%s); rebuilding.", path, e)
      arrays = None
  cached = arrays is not None
  if arrays is None:
    images, labels, names = generate_scenes(
        image_size=int(image_size), samples_per_class=int(samples_per_class),
        grid=grid, seed=int(seed), photos=photos)
    arrays = {"images": images, "labels": labels, "class_names": np.array(names)}
    if use_cache:
      io.save_npz(path, **arrays)
  return Dataset(arrays["images"][..., None], arrays["labels"],
                 tuple(str(s) for s in arrays["class_names"]), "scenes",
                 {"source": "real photos from skimage.data and "
                            "sklearn.datasets.load_sample_images; classes are "
                            "grid regions, samples random square crops",
                  "synthetic": False, "photos": list(photos),
                  "options": options, "cache_path": path if use_cache else None,
                  "from_cache": cached})
