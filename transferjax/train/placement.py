"""Placement of a stack of models on a 1-D ``("models",)`` device mesh.

Shared by the trainer (``transferjax.train.zoo``) and stacked inference
(``transferjax.train.inference``): the model axis is sharded over the mesh, data
is replicated, results come back to the host as numpy.
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding

# Rows per evaluation / inference batch.
EVAL_BATCH = 128


def model_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D ``("models",)`` mesh over ``devices`` (default: all).

  Built with ``Mesh`` directly: ``jax.make_mesh`` makes Explicit axes, over which a
  vmapped convolution raises ``ShardingTypeError``.
  """
  return Mesh(np.array(list(devices) if devices is not None else jax.devices()),
              ("models",))


def put(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
  return jax.device_put(np.asarray(x), sharding)


def fetch(x: jax.Array) -> np.ndarray:
  """Host copy of a (possibly multi-host sharded) array."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


def round_up(x: int, m: int) -> int:
  return int(math.ceil(max(x, 1) / m) * m)
