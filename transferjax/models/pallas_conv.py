"""3x3 SAME convolution as Pallas (Triton) kernels that never build im2col patches.

Why: on an H200 the im2col convolution spends half the zoo step writing and
reading its patch tensor (``[models, b*h*w, 9*c_in]``, 3.8 GB at 512 models in
float32; docs/notes/speed.md), so the step is memory-bound far below the FLOP
floor. These kernels read each input row from global memory once per tap
through the cache and accumulate the 9 taps in registers instead.

The layout trick ("flat shifts"): zero-pad the input by one pixel, flatten
``[b, h+2, w+2, c]`` to rows ``[b*(h+2)*(w+2), c]``. The output anchored at row
``r`` (the window's top-left corner) is ``sum_t xp_flat[r + off_t] @ k[t]`` with
``off_t = i*(w+2) + j`` for tap ``t = 3i + j``: 9 shifted row windows and 9 small
matmuls, the same for every row. Rows whose anchor sits in the padding are
computed and thrown away (``(h+2)(w+2)/(hw)`` = 1.44x the FLOPs at 10x10; the step
is bandwidth-bound, not FLOP-bound). With that layout:

* forward ``y = conv(x, k)``: ``flat_conv3x3`` over row tiles;
* input gradient ``dx = conv(dy, flip(k)^T)``: the same kernel;
* kernel gradient ``dk[t] = sum_r xp_flat[r + off_t]^T @ dy_anchored[r]``:
  ``flat_conv3x3_kernel_grad``, one program per (tap, row split) looping over tiles.

Single-model functions: under ``vmap`` over models Pallas adds a grid axis.
Constraints (Triton): channel counts powers of two and >= 16; others take the
im2col path (``supports``). On GPU the kernels compile with Triton (TF32 for
float32 at default precision, like XLA's matmuls); elsewhere they run in Pallas'
interpreter, which is exact but slow: for tests only.
"""
from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from transferjax import backend

TAPS = 9
TILE_ROWS = 128       # output rows per program: a power of two (Triton)
TILES_PER_SPLIT = 16  # most row tiles one kernel-gradient program sums


@contextlib.contextmanager
def tiling(tile_rows: int | None = None, tiles_per_split: int | None = None):
  """Trace the kernels with other tile sizes inside this block (benchmarks sweep
  them; the sizes are read when a function is traced, not when it runs).

  Args:
    tile_rows: output rows per program, a power of two (default 128).
    tiles_per_split: most row tiles per kernel-gradient program (default 16).
  """
  global TILE_ROWS, TILES_PER_SPLIT
  if tile_rows is not None and (tile_rows < 16 or tile_rows & (tile_rows - 1)):
    raise ValueError(f"tile_rows must be a power of two >= 16, got {tile_rows}.")
  saved = TILE_ROWS, TILES_PER_SPLIT
  TILE_ROWS = tile_rows or TILE_ROWS
  TILES_PER_SPLIT = tiles_per_split or TILES_PER_SPLIT
  try:
    yield
  finally:
    TILE_ROWS, TILES_PER_SPLIT = saved


def supports(c_in: int, c_out: int) -> bool:
  """Whether the Triton kernels take these channel counts (powers of 2, >= 16)."""
  return all(c >= 16 and c & (c - 1) == 0 for c in (c_in, c_out))


def use_interpreter() -> bool:
  """Interpret the kernels unless the default backend is a GPU (tests patch this)."""
  return backend.pallas_interpreted()


def _compiler_params():
  from jax.experimental.pallas import triton as pltriton
  return pltriton.CompilerParams(num_warps=4, num_stages=2)


def call_kernel(kernel, **kwargs):
  """``pl.pallas_call`` compiled with Triton on GPU, interpreted elsewhere."""
  interpret = use_interpreter()
  return pl.pallas_call(
      kernel, interpret=interpret,
      compiler_params=None if interpret else _compiler_params(), **kwargs)


def _tap_offsets(padded_width: int) -> tuple[int, ...]:
  return tuple(i * padded_width + j for i in range(3) for j in range(3))


def round_up(n: int, m: int) -> int:
  """The smallest multiple of ``m`` that is >= ``n``."""
  return -(-n // m) * m


def _conv_tile_kernel(x_ref, k_ref, o_ref, *, offsets, tile_rows):
  r0 = pl.program_id(0) * tile_rows
  acc = jnp.zeros((tile_rows, o_ref.shape[-1]), jnp.float32)
  for t, off in enumerate(offsets):
    rows = x_ref[pl.ds(r0 + off, tile_rows), :]                 # [tile, c_in]
    acc += jnp.dot(rows, k_ref[t], preferred_element_type=jnp.float32)
  o_ref[...] = acc.astype(o_ref.dtype)


def flat_conv3x3(x_flat: jax.Array, kmat: jax.Array, *, padded_width: int,
                 rows_out: int, tile_rows: int = TILE_ROWS) -> jax.Array:
  """``out[r] = sum_t x_flat[r + off_t] @ kmat[t]`` for ``r < rows_out``.

  Args:
    x_flat: ``[rows_out + 2*padded_width + 2, c_in]`` (the halo rows are read).
    kmat: ``[9, c_in, c_out]``, tap ``t = 3i + j``.
    padded_width: row stride of one image row in ``x_flat`` (``w + 2``).
    rows_out: a multiple of ``tile_rows``.

  Returns:
    ``[rows_out, c_out]`` in ``x_flat``'s dtype (float32 accumulation).
  """
  c_out = kmat.shape[-1]
  kernel = functools.partial(_conv_tile_kernel, tile_rows=tile_rows,
                             offsets=_tap_offsets(padded_width))
  return call_kernel(
      kernel, grid=(rows_out // tile_rows,),
      in_specs=[pl.BlockSpec(x_flat.shape, lambda i: (0, 0)),
                pl.BlockSpec(kmat.shape, lambda i: (0, 0, 0))],
      out_specs=pl.BlockSpec((tile_rows, c_out), lambda i: (i, 0)),
      out_shape=jax.ShapeDtypeStruct((rows_out, c_out), x_flat.dtype),
  )(x_flat, kmat)


def _kernel_grad_kernel(x_ref, g_ref, o_ref, *, padded_width, g_offset, tile_rows,
                        tiles_per_split):
  tap, split = pl.program_id(0), pl.program_id(1)
  off = (tap // 3) * padded_width + tap % 3

  def add_tile(i, acc):
    r = (split * tiles_per_split + i) * tile_rows
    rows = x_ref[pl.ds(r + off, tile_rows), :]                  # [tile, c_in]
    grads = g_ref[pl.ds(r + g_offset, tile_rows), :]            # [tile, c_out]
    return acc + lax.dot_general(rows, grads, (((0,), (0,)), ((), ())),
                                 preferred_element_type=jnp.float32)

  acc = lax.fori_loop(0, tiles_per_split, add_tile,
                      jnp.zeros(o_ref.shape, jnp.float32))
  o_ref[...] = acc


def flat_conv3x3_kernel_grad(x_flat: jax.Array, g_flat: jax.Array, *,
                             padded_width: int, rows: int, g_offset: int = 0,
                             tile_rows: int = TILE_ROWS,
                             tiles_per_split: int = TILES_PER_SPLIT) -> jax.Array:
  """``dk[t] = sum_{r < rows} x_flat[r + off_t]^T @ g_flat[g_offset + r]``.

  Args:
    x_flat: ``[rows + 2*padded_width + 2, c_in]``.
    g_flat: ``[>= g_offset + rows, c_out]``, zero at rows that are not real
      outputs.
    rows: a multiple of ``tile_rows * tiles_per_split``.
    g_offset: first row of ``g_flat`` read (lets the input gradient's array,
      which holds the same rows shifted, serve here too).

  Returns:
    ``[9, c_in, c_out]`` float32.
  """
  c_in, c_out = x_flat.shape[-1], g_flat.shape[-1]
  splits = rows // (tile_rows * tiles_per_split)
  kernel = functools.partial(_kernel_grad_kernel, padded_width=padded_width,
                             g_offset=g_offset, tile_rows=tile_rows,
                             tiles_per_split=tiles_per_split)
  partial_sums = call_kernel(
      kernel, grid=(TAPS, splits),
      in_specs=[pl.BlockSpec(x_flat.shape, lambda t, s: (0, 0)),
                pl.BlockSpec(g_flat.shape, lambda t, s: (0, 0))],
      out_specs=pl.BlockSpec((None, None, c_in, c_out), lambda t, s: (t, s, 0, 0)),
      out_shape=jax.ShapeDtypeStruct((TAPS, splits, c_in, c_out), jnp.float32),
  )(x_flat, g_flat)
  return partial_sums.sum(axis=1)


def _geometry(b: int, h: int, w: int, row_multiple: int):
  """(rows of the padded images, rows rounded up, halo rows) of the flat layout."""
  rows = b * (h + 2) * (w + 2)
  return rows, round_up(rows, row_multiple), 2 * (w + 2) + 2


def _to_flat(x: jax.Array, rows_total: int) -> jax.Array:
  """``[b, h, w, c]`` -> zero-padded images as ``[rows_total, c]`` rows."""
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  flat = xp.reshape(-1, x.shape[-1])
  return jnp.pad(flat, ((0, rows_total - flat.shape[0]), (0, 0)))


def split_tiles(tiles: int, most: int = TILES_PER_SPLIT) -> int:
  """Tiles per kernel-gradient program: the largest divisor of ``tiles`` up to
  ``most`` (no padded tiles; more programs when ``tiles`` is prime)."""
  return max(d for d in range(1, min(tiles, most) + 1) if tiles % d == 0)


def _conv_flat(x_flat, kernel, b, h, w, tile_rows):
  """The convolution of padded-layout rows; returns ``[b, h, w, c_out]``."""
  c_out = kernel.shape[-1]
  rows, rows_out, _ = _geometry(b, h, w, tile_rows)
  y = flat_conv3x3(x_flat, kernel.reshape(TAPS, -1, c_out), padded_width=w + 2,
                   rows_out=rows_out, tile_rows=tile_rows)
  return y[:rows].reshape(b, h + 2, w + 2, c_out)[:, :h, :w]


def conv3x3_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """3x3 stride-1 SAME convolution, NHWC x HWIO -> NHWC, as Pallas kernels.

  Args:
    x: ``[b, h, w, c_in]``.
    kernel: ``[3, 3, c_in, c_out]`` (``nn.Conv``'s layout), same dtype as ``x``.

  Returns:
    ``[b, h, w, c_out]``; equals ``lax.conv_general_dilated(..., "SAME")``.
  """
  # The tiling is fixed when the forward is traced, so the backward (traced
  # later, maybe outside a ``tiling`` block) uses the same one.
  return _conv3x3_same(x, kernel, (TILE_ROWS, TILES_PER_SPLIT))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv3x3_same(x, kernel, tiling_):
  return _fwd(x, kernel, tiling_)[0]


def _fwd(x, kernel, tiling_):
  b, h, w, _ = x.shape
  _, rows_out, halo = _geometry(b, h, w, tiling_[0])
  x_flat = _to_flat(x, rows_out + halo)
  # The flat rows are the residual: the kernel gradient reads them as they are.
  return _conv_flat(x_flat, kernel, b, h, w, tiling_[0]), (x_flat, kernel)


def _bwd(tiling_, res, g):
  tile_rows, most_tiles_per_split = tiling_
  x_flat, kernel = res
  b, h, w, c_out = g.shape
  rows, rows_out, halo = _geometry(b, h, w, tile_rows)
  g = g.astype(x_flat.dtype)
  # One array serves both gradients: g at its windows' top-left rows ("anchored",
  # zeros where that corner is padding), preceded by w + 3 zero rows, is exactly
  # g zero-padded by one pixel and flattened, the layout the input gradient reads.
  lead = w + 3
  anchored = jnp.pad(g, ((0, 0), (0, 2), (0, 2), (0, 0))).reshape(rows, c_out)
  g_flat = jnp.pad(anchored, ((lead, rows_out + halo - rows - lead), (0, 0)))
  # dx = conv(g, flipped in/out-swapped kernel): the forward kernel again.
  dx = _conv_flat(g_flat, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2), b, h, w,
                  tile_rows)
  tiles = rows_out // tile_rows
  dk = flat_conv3x3_kernel_grad(
      x_flat, g_flat, padded_width=w + 2, rows=rows_out, g_offset=lead,
      tile_rows=tile_rows, tiles_per_split=split_tiles(tiles, most_tiles_per_split))
  return dx, dk.reshape(kernel.shape).astype(kernel.dtype)


_conv3x3_same.defvjp(_fwd, _bwd)
