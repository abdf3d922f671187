"""Pools and targets of the testbed suite that keep sources and targets apart.

* ``scenes_pool``: the scenes pool without its last three photographs
  (16 photos x 3x3 regions = 144 classes). Sources train here.
* ``scenes_heldout``: only those three photographs, cut 2x2 (12 classes):
  a multi-class target whose pictures no ``scenes_pool`` source has seen.
* ``mnist04``: MNIST digits 0-4 only (2,500 images), a source pool whose
  classes are disjoint from the ``mnist:5,6,7,8,9`` target's.
"""
from __future__ import annotations

import numpy as np

from transferjax.data import builtin, scenes
from transferjax.data.container import Dataset

HELDOUT_PHOTOS = scenes.DEFAULT_PHOTOS[-3:]          # clock, china, flower
POOL_PHOTOS = scenes.DEFAULT_PHOTOS[:-3]


def load_scenes_pool(*, image_size: int = 20, seed: int = 0) -> Dataset:
  """Scenes without the held-out photographs: 144 region classes."""
  ds = scenes.load_scenes(image_size=image_size, seed=seed, photos=POOL_PHOTOS)
  return Dataset(ds.images, ds.labels, ds.class_names, "scenes_pool", dict(ds.metadata))


def load_scenes_heldout(*, image_size: int = 20, seed: int = 0) -> Dataset:
  """The held-out photographs, 2x2 regions each: 12 classes of 100 crops."""
  ds = scenes.load_scenes(image_size=image_size, seed=seed, photos=HELDOUT_PHOTOS,
                          grid=(2, 2))
  return Dataset(ds.images, ds.labels, ds.class_names, "scenes_heldout",
                 dict(ds.metadata))


def load_mnist04(*, image_size: int = 20, seed: int = 0) -> Dataset:
  """MNIST digits 0-4 (500 images each)."""
  ds = builtin.load_mnist(image_size=image_size, seed=seed)
  keep = np.flatnonzero(ds.labels < 5)
  return Dataset(ds.images[keep], ds.labels[keep], ds.class_names[:5], "mnist04",
                 dict(ds.metadata))
