"""conv1 + bias + ReLU + 2x2 max-pool as Pallas (Triton) kernels, one input channel.

Why: on an H200 the conv1 stage (im2col conv1, ReLU, pool1, forward and
backward) moves ~25 MB per model-step, mostly conv1's ``[64, 20, 20, 32]``
output written, saved, re-read and its gradient written and read
(docs/notes/speed.md). These kernels keep that output on chip: the forward
writes only the pooled ``[64, 10, 10, 32]``; the backward recomputes conv1 from
the images.

The layout: a 2x2 pool over 3x3 SAME convolutions sees a 4x4 window of the
zero-padded input, so each pooled position gets its 16 input pixels as one row
(``[b*h2*w2, 16]``, built by XLA from the tiny input). The 4 conv outputs under
the pool window ("phases" ``(di, dj)``) are ``row @ k_phase[p]`` with
``k_phase[p]`` the 3x3 kernel placed at offset ``(di, dj)`` in a 4x4 frame
(``[16, c_out]``): 4 small matmuls per tile of 128 positions, then bias, max
over phases, ReLU. The backward recomputes the phases, gives each window's
gradient to its first maximum (``nn.max_pool``'s rule; the winner is taken in
registers from the same values, so recomputation cannot disagree with itself)
if that maximum is positive, and accumulates ``row^T @ d_phase`` into
``d k_phase``; JAX's autodiff of the phase placement folds it back to the 3x3
kernel. The input gradient is a separate kernel that XLA drops when, as for
conv1, the input is the data.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from transferjax.models import pallas_conv

PHASES = 4


def supports(c_in: int, c_out: int) -> bool:
  """One input channel and a power-of-two ``c_out >= 16`` (Triton tiles)."""
  return c_in == 1 and c_out >= 16 and c_out & (c_out - 1) == 0


def window_rows(x: jax.Array) -> jax.Array:
  """``[b, h, w, 1]`` -> ``[b * (h//2) * (w//2), 16]``: each pooled position's
  4x4 window of the zero-padded input, row-major."""
  b, h, w, _ = x.shape
  h2, w2 = h // 2, w // 2
  xp = jnp.pad(x[..., 0], ((0, 0), (1, 1), (1, 1)))
  cols = [xp[:, u:u + 2 * h2:2, v:v + 2 * w2:2] for u in range(4) for v in range(4)]
  return jnp.stack(cols, axis=-1).reshape(b * h2 * w2, 16)


def phase_kernels(kernel: jax.Array) -> jax.Array:
  """``[3, 3, 1, c_out]`` -> ``[4, 16, c_out]``: the kernel at offset ``(di, dj)``
  of a 4x4 frame for phase ``p = 2 di + dj``."""
  k = kernel[:, :, 0, :]
  return jnp.stack([jnp.pad(k, ((di, 1 - di), (dj, 1 - dj), (0, 0))).reshape(16, -1)
                    for di in range(2) for dj in range(2)])


def _phases(rows, kp_ref, bias):
  return [jnp.dot(rows, kp_ref[p], preferred_element_type=jnp.float32) + bias
          for p in range(PHASES)]


def _winners(phases, g):
  """Per phase, the gradient of the pooled ReLU: ``g`` where the phase is the
  window's first maximum and that maximum is positive, else 0."""
  best = functools.reduce(jnp.maximum, phases)
  live = jnp.where(best > 0, g, 0.0)
  taken = jnp.zeros(best.shape, jnp.bool_)
  out = []
  for a in phases:
    win = (a == best) & ~taken
    taken = taken | win
    out.append(jnp.where(win, live, 0.0))
  return out


def _forward_kernel(x_ref, kp_ref, b_ref, o_ref):
  phases = _phases(x_ref[...], kp_ref, b_ref[...].astype(jnp.float32))
  o_ref[...] = jnp.maximum(functools.reduce(jnp.maximum, phases), 0.0).astype(
      o_ref.dtype)


def _grad_kernel(x_ref, kp_ref, b_ref, g_ref, dk_ref, db_ref, *, tile_rows,
                 tiles_per_split):
  split = pl.program_id(0)
  bias = b_ref[...].astype(jnp.float32)
  c_out = g_ref.shape[-1]

  def add_tile(i, carry):
    dks, db = carry
    r = (split * tiles_per_split + i) * tile_rows
    rows = x_ref[pl.ds(r, tile_rows), :]                          # [tile, 16]
    g = g_ref[pl.ds(r, tile_rows), :].astype(jnp.float32)         # [tile, c_out]
    d = _winners(_phases(rows, kp_ref, bias), g)
    dks = tuple(acc + lax.dot_general(rows, dp.astype(rows.dtype),
                                      (((0,), (0,)), ((), ())),
                                      preferred_element_type=jnp.float32)
                for acc, dp in zip(dks, d))
    return dks, db + functools.reduce(jnp.add, d).sum(axis=0, keepdims=True)

  zeros = jnp.zeros((16, c_out), jnp.float32)
  dks, db = lax.fori_loop(0, tiles_per_split, add_tile,
                          ((zeros,) * PHASES, jnp.zeros((1, c_out), jnp.float32)))
  for p in range(PHASES):
    dk_ref[p] = dks[p]
  db_ref[...] = db


def _input_grad_kernel(x_ref, kp_ref, b_ref, g_ref, dx_ref):
  rows = x_ref[...]
  d = _winners(_phases(rows, kp_ref, b_ref[...].astype(jnp.float32)),
               g_ref[...].astype(jnp.float32))
  dx = functools.reduce(jnp.add, [
      lax.dot_general(dp.astype(rows.dtype), kp_ref[p], (((1,), (1,)), ((), ())),
                      preferred_element_type=jnp.float32)
      for p, dp in enumerate(d)])
  dx_ref[...] = dx.astype(dx_ref.dtype)


def _specs(rows_shape, kp_shape, c_out, tile_rows):
  return [pl.BlockSpec((tile_rows, rows_shape[1]), lambda i: (i, 0)),
          pl.BlockSpec(kp_shape, lambda i: (0, 0, 0)),
          pl.BlockSpec((1, c_out), lambda i: (0, 0))]


def _pooled(rows, kp, bias2d, tile_rows):
  c_out = kp.shape[-1]
  return pallas_conv.call_kernel(
      _forward_kernel, grid=(rows.shape[0] // tile_rows,),
      in_specs=_specs(rows.shape, kp.shape, c_out, tile_rows),
      out_specs=pl.BlockSpec((tile_rows, c_out), lambda i: (i, 0)),
      out_shape=jax.ShapeDtypeStruct((rows.shape[0], c_out), rows.dtype),
  )(rows, kp, bias2d)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _pool_phases(rows, kp, bias2d, tiling_):
  return _pooled(rows, kp, bias2d, tiling_[0])


def _fwd(rows, kp, bias2d, tiling_):
  return _pooled(rows, kp, bias2d, tiling_[0]), (rows, kp, bias2d)


def _bwd(tiling_, res, g):
  tile_rows, most = tiling_
  rows, kp, bias2d = res
  c_out = kp.shape[-1]
  tiles = rows.shape[0] // tile_rows
  per_split = pallas_conv.split_tiles(tiles, most)
  splits = tiles // per_split
  whole = lambda s: (0, 0)
  dk, db = pallas_conv.call_kernel(
      functools.partial(_grad_kernel, tile_rows=tile_rows, tiles_per_split=per_split),
      grid=(splits,),
      in_specs=[pl.BlockSpec(rows.shape, whole),
                pl.BlockSpec(kp.shape, lambda s: (0, 0, 0)),
                pl.BlockSpec((1, c_out), whole),
                pl.BlockSpec(g.shape, whole)],
      out_specs=[pl.BlockSpec((None, PHASES, 16, c_out), lambda s: (s, 0, 0, 0)),
                 pl.BlockSpec((None, 1, c_out), lambda s: (s, 0, 0))],
      out_shape=[jax.ShapeDtypeStruct((splits, PHASES, 16, c_out), jnp.float32),
                 jax.ShapeDtypeStruct((splits, 1, c_out), jnp.float32)],
  )(rows, kp, bias2d, g)
  # Dropped by XLA when the input is the data (conv1).
  drows = pallas_conv.call_kernel(
      _input_grad_kernel, grid=(tiles,),
      in_specs=_specs(rows.shape, kp.shape, c_out, tile_rows)
      + [pl.BlockSpec((tile_rows, c_out), lambda i: (i, 0))],
      out_specs=pl.BlockSpec((tile_rows, 16), lambda i: (i, 0)),
      out_shape=jax.ShapeDtypeStruct(rows.shape, rows.dtype),
  )(rows, kp, bias2d, g)
  return drows, dk.sum(0).astype(kp.dtype), db.sum(0).astype(bias2d.dtype)


_pool_phases.defvjp(_fwd, _bwd)


def conv_relu_pool(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
  """``max_pool2(relu(conv3x3_same(x, kernel) + bias))`` for one input channel.

  Args:
    x: ``[b, h, w, 1]``; kernel ``[3, 3, 1, c_out]``; bias ``[c_out]`` (one dtype).

  Returns:
    ``[b, h // 2, w // 2, c_out]`` (an odd last row/column is dropped, as VALID
    pooling does). Differentiable in all three arguments.
  """
  b, h, w, _ = x.shape
  c_out = kernel.shape[-1]
  tile_rows = pallas_conv.TILE_ROWS
  rows = window_rows(x)
  n = rows.shape[0]
  padded = jnp.pad(rows, ((0, pallas_conv.round_up(n, tile_rows) - n), (0, 0)))
  out = _pool_phases(padded, phase_kernels(kernel), bias.reshape(1, c_out),
                     (tile_rows, pallas_conv.TILES_PER_SPLIT))
  return out[:n].reshape(b, h // 2, w // 2, c_out)
