"""Features of every transferable depth of every source, for scoring depths.

Transferring the first ``l`` layers of a source hands the target the features
after layer ``l``. Depth ``l`` of a source is scored by the same CMI as the
penultimate features, ``I(Y; F_i^l | T)``, on:

* ``conv1``: after conv1 + ReLU + pool1,
* ``conv2``: after conv2 + ReLU (+ pool2 where the arch has it),
* ``fc``: the 200-d penultimate features (the paper's ``N^{m-1}``),

with the spatial maps average-pooled to a fixed ``grid x grid`` so every depth
has a few hundred dimensions (``grid=2``: 128, 256 and 200).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from transferjax.models import arch_spec, make_cnn
from transferjax.models.cnn import max_pool2
from transferjax.transfer.finetune import TRANSFERABLE_LAYERS

DEPTHS = TRANSFERABLE_LAYERS


def _grid_pool(x: jax.Array, grid: int) -> jax.Array:
  """``[b, h, w, c]`` -> ``[b, grid * grid * c]``: mean over ``grid`` near-equal
  bins per side (adaptive average pooling; bins differ by at most one row)."""
  h, w = x.shape[1], x.shape[2]
  rows = np.array_split(np.arange(h), grid)
  cols = np.array_split(np.arange(w), grid)
  cells = [x[:, r[0]:r[-1] + 1, c[0]:c[-1] + 1].mean(axis=(1, 2))
           for r in rows for c in cols]
  return jnp.stack(cells, axis=1).reshape(x.shape[0], -1)


@functools.lru_cache(maxsize=8)
def _depth_fn(arch: str, head: int, grid: int):
  model = make_cnn(arch, head, "im2col")
  pool2 = arch_spec(arch).pool_after_conv2

  def one(params, images):
    (_, fc), state = model.apply({"params": params}, images,
                                 capture_intermediates=True,
                                 mutable=["intermediates"])
    inter = state["intermediates"]
    c1 = max_pool2(jax.nn.relu(inter["conv1"]["__call__"][0]))
    c2 = jax.nn.relu(inter["conv2"]["__call__"][0])
    if pool2:
      c2 = max_pool2(c2)
    return _grid_pool(c1, grid), _grid_pool(c2, grid), fc

  return jax.jit(jax.vmap(one, in_axes=(0, None)))


def depth_features(params, arch: str, images: np.ndarray, *, grid: int = 2,
                   model_chunk: int = 8) -> dict:
  """``{depth: [q, n, d_depth]}`` features after each transferable layer.

  Args:
    params: zoo parameter stack ``[q, ...]``.
    arch: the zoo's architecture.
    images: ``[n, s, s, 1]``.
    grid: spatial maps are average-pooled to ``grid x grid`` cells.
    model_chunk: models per compiled call.
  """
  head = int(params["head"]["kernel"].shape[-1])
  q = int(params["head"]["kernel"].shape[0])
  fn = _depth_fn(arch, head, int(grid))
  x = jnp.asarray(images, jnp.float32)
  parts = [[], [], []]
  for s in range(0, q, model_chunk):
    p = jax.tree.map(lambda a: jnp.asarray(np.asarray(a)[s:s + model_chunk]), params)
    for j, out in enumerate(fn(p, x)):
      parts[j].append(np.asarray(out, np.float32))
  return {d: np.concatenate(parts[j]) for j, d in enumerate(DEPTHS)}
