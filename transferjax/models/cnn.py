"""The small source/target CNNs of the paper, with two interchangeable convolutions.

Every architecture uses fixed submodule names ``conv1``, ``conv2``, ``fc`` (the
penultimate dense layer ``N^{m-1}``, 200 units) and ``head`` (the task layer padded
to ``max_classes``), so transfer code can copy ``conv*`` parameters by name.

Three interchangeable convolution implementations share one parameter layout
(``kernel`` ``[3, 3, c_in, c_out]``, ``bias`` ``[c_out]``, exactly ``nn.Conv``'s),
so parameters move freely between them:

* ``"xla"``: ``lax.conv_general_dilated`` (``nn.Conv`` semantics). Fastest for one
  model, but under ``vmap`` over models XLA turns it into a grouped convolution,
  which XLA:CPU runs several times slower.
* ``"im2col"`` (default): patches from 9 shifted slices of the padded input, then
  one matmul with the reshaped kernel. Under ``vmap`` it becomes a batched matmul.
* ``"patches"``: the same with ``lax.conv_general_dilated_patches`` building the
  patches (an identity-kernel convolution: slower than the slices outside a scan).
* ``"xla_vjp"``: ``"xla"``'s forward with a hand-written backward
  (``jax.custom_vjp``): the input gradient is the SAME convolution of the output
  gradient with the flipped, in/out-swapped kernel, and the kernel gradient an
  explicit VALID convolution over the transposed input. XLA:CPU runs both as fast
  Eigen spatial convolutions, while autodiff's own kernel-gradient convolution
  takes its slow generic path (20x slower). Fastest on CPU when models are
  looped (``make_multi_step_runner(..., model_loop="map")``); under ``vmap`` it
  is a grouped convolution like ``"xla"``.
* ``"pallas"``: Pallas (Triton) kernels that accumulate the 9 taps from shifted
  rows of the flattened padded input and never build the patches
  (``pallas_conv``); for GPUs, where im2col's patch tensor makes the zoo step
  memory-bound. Layers whose channel counts Triton cannot tile (``conv1``'s
  single input channel) take ``"im2col"``. Off GPU the kernels run in Pallas'
  interpreter: exact, slow, for tests.

Max-pooling is a reshape + max (``max_pool2``): the same values as
``nn.max_pool``, and on XLA:CPU its gradient is 3-5x cheaper than
``select_and_scatter``'s. ``pool_impl="fused"`` runs conv1 + ReLU + pool1 as
one ``conv_relu_pool`` whose backward recomputes conv1 from the images instead
of saving its output (a GPU memory-traffic lever); with ``conv_impl="pallas"``
that stage is the Pallas kernels of ``pallas_conv_pool``, otherwise 9 XLA FMAs. ``compute_dtype="bfloat16"`` runs convolutions and
dense layers in bf16 with float32 parameters and float32 logits.

Measurements: docs/notes/zoo.md, docs/notes/speed.md.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from transferjax.errors import ConfigError
from transferjax.models import pallas_conv, pallas_conv_pool

FEATURE_DIM = 200
CONV_IMPLS = ("xla", "im2col", "patches", "xla_vjp", "pallas")
COMPUTE_DTYPES = ("float32", "bfloat16")
POOL_IMPLS = ("reshape", "flax", "fused")


@dataclasses.dataclass(frozen=True)
class ArchSpec:
  """Static facts about one architecture.

  Attributes:
    name: registry name.
    image_size: the only input side it takes (square, 1 channel).
    pool_after_conv2: whether conv2 is followed by a 2x2 max-pool.
    description: one line for docs and errors.
  """
  name: str
  image_size: int
  pool_after_conv2: bool
  description: str


ARCHS: dict[str, ArchSpec] = {
    "lenet20": ArchSpec(
        "lenet20", 20, True,
        "20x20x1 -> conv3x3-32 SAME+ReLU+pool2 -> conv3x3-64 SAME+ReLU+pool2 -> "
        "dense 200+ReLU -> head"),
    "spot9": ArchSpec(
        "spot9", 9, False,
        "9x9x1 -> conv3x3-32 SAME+ReLU+pool2 (9->4) -> conv3x3-64 SAME+ReLU -> "
        "dense 200+ReLU -> head"),
}


def arch_spec(arch: str) -> ArchSpec:
  """The ``ArchSpec`` of ``arch``; ConfigError naming the choices otherwise."""
  if arch not in ARCHS:
    raise ConfigError(f"Unknown arch {arch!r}; choose one of {sorted(ARCHS)}.")
  return ARCHS[arch]


def check_image_size(arch: str, image_size: int) -> None:
  """Raise ConfigError unless ``arch`` takes ``image_size`` x ``image_size`` inputs."""
  spec = arch_spec(arch)
  if int(image_size) != spec.image_size:
    raise ConfigError(
        f"Arch {arch!r} takes {spec.image_size}x{spec.image_size}x1 images, got "
        f"{image_size}x{image_size}. Resize the data to {spec.image_size} (e.g. "
        f"--image_size={spec.image_size}) or pick an arch for this size "
        f"({', '.join(f'{a.name}: {a.image_size}' for a in ARCHS.values())}).")


def masked_logits(logits: jax.Array, num_classes: jax.Array | int) -> jax.Array:
  """Logits with the padded head columns ``>= num_classes`` set to ``finfo.min``.

  Every loss and prediction goes through this helper, so a head padded to
  ``max_classes`` behaves exactly like a head of ``num_classes`` outputs: the
  padded columns get probability 0 and exactly zero gradient.

  Args:
    logits: ``[..., max_classes]``.
    num_classes: scalar (an array, so it can differ per vmapped model).

  Returns:
    ``[..., max_classes]`` masked logits.
  """
  valid = jnp.arange(logits.shape[-1]) < num_classes
  return jnp.where(valid, logits, jnp.finfo(logits.dtype).min)


def _conv_xla(x, kernel):
  return lax.conv_general_dilated(
      x, kernel, window_strides=(1, 1), padding="SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _conv_im2col(x, kernel):
  kh, kw, c_in, c_out = kernel.shape
  h, w = x.shape[1], x.shape[2]
  # Patches from kh * kw shifted slices of the zero-padded input (pure data
  # movement), feature index = (i * kw + j) * c_in + c: kernel.reshape's order.
  xp = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  patches = jnp.concatenate(
      [xp[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)], axis=-1)
  return jnp.einsum("bhwk,ko->bhwo", patches,
                    kernel.reshape(kh * kw * c_in, c_out))


def _conv_patches(x, kernel):
  kh, kw, c_in, c_out = kernel.shape
  # Patches come out channel-major: feature index = c * (kh * kw) + i * kw + j.
  patches = lax.conv_general_dilated_patches(
      x, filter_shape=(kh, kw), window_strides=(1, 1), padding="SAME",
      dimension_numbers=("NHWC", "OIHW", "NHWC"))
  w = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(c_in * kh * kw, c_out)
  return jnp.einsum("bhwk,ko->bhwo", patches, w)


def _conv_input_grad(g, kernel):
  """Gradient of a 3x3 SAME stride-1 convolution w.r.t. its input: the SAME
  convolution of ``g [b, h, w, c_out]`` with the flipped, in/out-swapped kernel."""
  return _conv_xla(g, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))


def _conv_kernel_grad(x, g, kernel_shape):
  """Gradient w.r.t. the kernel ``[kh, kw, c_in, c_out]``.

  ``dk[i, j, c, o] = sum_{b, y, x} xp[b, y + i, x + j, c] * g[b, y, x, o]``: the
  ``kh * kw`` shifted slices of the padded input stacked on a new leading axis
  and ONE matmul ``[kh*kw*c_in, b*h*w] @ [b*h*w, c_out]``. On XLA:CPU this is
  1.7x the explicit VALID convolution with the batch as the contracted channel
  (2.6 vs 4.5 ms per model-step for conv2, docs/notes/speed.md) and 1.4x nine
  separate matmuls.

  The input is moved to channel-major ``[c_in, b, h, w]`` before it is padded
  and sliced, so the slices stack straight into the matmul's ``[kh*kw*c_in,
  b*h*w]`` operand: XLA writes it in one pass instead of stacking ``[kh*kw, b,
  h, w, c_in]`` and then transposing that 9x larger array (the matmul and its
  numbers are unchanged; docs/notes/zoospeed.md).
  """
  kh, kw = kernel_shape[:2]
  h, w = x.shape[1], x.shape[2]
  xt = jnp.pad(jnp.moveaxis(x, -1, 0),
               ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
  shifted = jnp.stack([xt[:, :, i:i + h, j:j + w]
                       for i in range(kh) for j in range(kw)])  # [kh*kw, c, b, h, w]
  dk = jnp.einsum("kcbhw,bhwo->kco", shifted, g)
  return dk.reshape(kernel_shape)


@jax.custom_vjp
def _conv_xla_vjp(x, kernel):
  return _conv_xla(x, kernel)


def _conv_xla_vjp_fwd(x, kernel):
  return _conv_xla(x, kernel), (x, kernel)


def _conv_xla_vjp_bwd(res, g):
  x, kernel = res
  # The input gradient of conv1 (x = data) is dead code that XLA removes.
  return (_conv_input_grad(g, kernel).astype(x.dtype),
          _conv_kernel_grad(x, g, kernel.shape).astype(kernel.dtype))


_conv_xla_vjp.defvjp(_conv_xla_vjp_fwd, _conv_xla_vjp_bwd)


def _conv_pallas(x, kernel):
  if pallas_conv.supports(kernel.shape[2], kernel.shape[3]):
    return pallas_conv.conv3x3_same(x, kernel)
  return _conv_im2col(x, kernel)


_CONV_FNS: dict[str, Callable] = {"xla": _conv_xla, "im2col": _conv_im2col,
                                  "patches": _conv_patches,
                                  "xla_vjp": _conv_xla_vjp,
                                  "pallas": _conv_pallas}


def max_pool2(x: jax.Array) -> jax.Array:
  """2x2 stride-2 VALID max-pool of ``[b, h, w, c]`` as a reshape + max.

  Equals ``nn.max_pool(x, (2, 2), strides=(2, 2))`` (an odd last row/column is
  dropped, as VALID does). Its gradient (``custom_vjp``) is one elementwise
  select, which XLA:CPU runs several times faster than ``select_and_scatter``
  (docs/notes/speed.md); on ties every tied entry gets the gradient where
  ``nn.max_pool`` gives it to the first maximum, which after a ReLU only happens
  in all-zero windows (gradient 0 either way).
  """
  h, w = x.shape[1], x.shape[2]
  return _max_pool2_even(x[:, :h // 2 * 2, :w // 2 * 2, :])


def _windows(x):
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c)


@jax.custom_vjp
def _max_pool2_even(x):
  return jnp.max(_windows(x), axis=(2, 4))


def _max_pool2_fwd(x):
  y = _max_pool2_even(x)
  return y, (x, y)


def _max_pool2_bwd(res, g):
  # One fused select: the gradient goes to the window's maximum. (Autodiff of
  # jnp.max counts ties and divides: 4x slower on XLA:CPU, docs/notes/speed.md.)
  # On ties every tied entry gets it; after a ReLU ties are all-zero windows,
  # whose gradient the ReLU zeroes.
  x, y = res
  mask = _windows(x) == y[:, :, None, :, None, :]
  gx = jnp.where(mask, g[:, :, None, :, None, :], jnp.zeros((), g.dtype))
  return (gx.reshape(x.shape),)


_max_pool2_even.defvjp(_max_pool2_fwd, _max_pool2_bwd)


def _pool(x, pool_impl: str):
  if pool_impl == "flax":
    return nn.max_pool(x, (2, 2), strides=(2, 2))
  return max_pool2(x)


def _conv_taps(x, kernel):
  """3x3 SAME convolution as 9 shifted multiply-adds: elementwise work XLA fuses
  with what follows (for one input channel it is 9 broadcast FMAs)."""
  h, w = x.shape[1], x.shape[2]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return sum(jnp.einsum("bhwc,co->bhwo", xp[:, i:i + h, j:j + w], kernel[i, j])
             for i in range(3) for j in range(3))


@jax.custom_vjp
def conv_relu_pool(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
  """``max_pool2(relu(conv3x3_same(x, kernel) + bias))`` keeping only its inputs.

  The backward recomputes the convolution from ``x`` instead of saving the
  ``[b, h, w, c_out]`` activations: for conv1 (one input channel) the saved and
  re-read activations are most of the layer's memory traffic, and recomputing 9
  FMAs per output is cheap where bandwidth, not arithmetic, bounds the step
  (GPUs; docs/notes/speed.md). Gradients equal those of the unfused layers
  (a window's gradient goes to its first maximum, as in ``nn.max_pool``).

  Args:
    x: ``[b, h, w, c_in]``; kernel ``[3, 3, c_in, c_out]``; bias ``[c_out]``.

  Returns:
    ``[b, h // 2, w // 2, c_out]``.
  """
  return max_pool2(jax.nn.relu(_conv_taps(x, kernel) + bias))


def _conv_relu_pool_fwd(x, kernel, bias):
  return conv_relu_pool(x, kernel, bias), (x, kernel, bias)


def _conv_relu_pool_bwd(res, g):
  x, kernel, bias = res
  a = _conv_taps(x, kernel) + bias
  b, h2, w2, c = g.shape
  # Each window's winner by argmax, not by comparing with a separately taken
  # max: XLA may recompute ``a`` in several fusions, contracting the 9 FMAs
  # differently, and a 1-ulp difference would drop the gradient (seen under
  # jit on CPU). The gradient goes to the first maximum (nn.max_pool's rule;
  # max_pool2 splits exact ties, which after the ReLU are all-zero windows).
  wins = _windows(a[:, :2 * h2, :2 * w2]).transpose(0, 1, 3, 5, 2, 4).reshape(
      b, h2, w2, c, 4)
  first = jnp.argmax(wins, axis=-1)
  best = jnp.take_along_axis(wins, first[..., None], axis=-1)[..., 0]
  live = jnp.where(best > 0, g, jnp.zeros((), g.dtype))  # ReLU'd windows: no grad
  da = jnp.where(jnp.arange(4) == first[..., None], live[..., None],
                 jnp.zeros((), g.dtype))
  da = da.reshape(b, h2, w2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(
      b, 2 * h2, 2 * w2, c)
  da = jnp.pad(da, ((0, 0), (0, a.shape[1] - 2 * h2), (0, a.shape[2] - 2 * w2),
                    (0, 0)))
  # The input gradient (dead code for conv1, whose input is the data).
  return (_conv_input_grad(da, kernel).astype(x.dtype),
          _conv_kernel_grad(x, da, kernel.shape).astype(kernel.dtype),
          jnp.sum(da, axis=(0, 1, 2)).astype(bias.dtype))


conv_relu_pool.defvjp(_conv_relu_pool_fwd, _conv_relu_pool_bwd)


class Conv3x3(nn.Module):
  """3x3 SAME convolution with ``nn.Conv``'s parameters and either implementation.

  ``relu_pool=True`` also applies ReLU and the 2x2 max-pool, as one
  ``conv_relu_pool`` that recomputes the convolution in the backward (the
  Pallas kernels of ``pallas_conv_pool`` with ``conv_impl="pallas"`` and one
  input channel); the parameters are the same either way.
  """
  features: int
  conv_impl: str = "im2col"
  compute_dtype: str = "float32"
  relu_pool: bool = False

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    # Float32 master weights; the convolution runs in compute_dtype.
    dtype = jnp.dtype(self.compute_dtype)
    x, kernel, bias = x.astype(dtype), kernel.astype(dtype), bias.astype(dtype)
    if self.relu_pool:
      if self.conv_impl == "pallas" and pallas_conv_pool.supports(x.shape[-1],
                                                                 self.features):
        return pallas_conv_pool.conv_relu_pool(x, kernel, bias)
      return conv_relu_pool(x, kernel, bias)
    return _CONV_FNS[self.conv_impl](x, kernel) + bias


class SmallCNN(nn.Module):
  """conv1 -> pool -> conv2 (-> pool) -> fc (200, ReLU) -> head.

  ``__call__(x)`` takes ``[b, s, s, 1]`` and returns ``(logits [b, max_classes],
  features [b, 200])``; ``features`` is the penultimate layer ``N^{m-1}(x)``.
  """
  arch: str
  max_classes: int
  conv_impl: str = "im2col"
  compute_dtype: str = "float32"
  pool_impl: str = "reshape"

  @nn.compact
  def __call__(self, x):
    spec = arch_spec(self.arch)
    if x.ndim != 4 or x.shape[-1] != 1:
      raise ConfigError(f"Arch {self.arch!r} takes [b, {spec.image_size}, "
                        f"{spec.image_size}, 1] images, got shape {x.shape}.")
    if x.shape[1] != x.shape[2]:
      raise ConfigError(f"Arch {self.arch!r} takes square {spec.image_size}x"
                        f"{spec.image_size} images, got {x.shape[1]}x{x.shape[2]}.")
    check_image_size(self.arch, x.shape[1])
    dtype = jnp.dtype(self.compute_dtype)
    if self.pool_impl == "fused":  # conv1 + ReLU + pool1 recomputed backward
      x = Conv3x3(32, self.conv_impl, self.compute_dtype, relu_pool=True,
                  name="conv1")(x)
    else:
      x = nn.relu(Conv3x3(32, self.conv_impl, self.compute_dtype, name="conv1")(x))
      x = _pool(x, self.pool_impl)
    x = nn.relu(Conv3x3(64, self.conv_impl, self.compute_dtype, name="conv2")(x))
    if spec.pool_after_conv2:
      x = _pool(x, "flax" if self.pool_impl == "flax" else "reshape")
    x = x.reshape(x.shape[0], -1)
    features = nn.relu(nn.Dense(FEATURE_DIM, dtype=dtype, name="fc")(x))
    logits = nn.Dense(self.max_classes, dtype=dtype, name="head")(features)
    # Float32 outputs whatever the compute dtype: the loss is always float32.
    return logits.astype(jnp.float32), features.astype(jnp.float32)


def make_cnn(arch: str, max_classes: int, conv_impl: str = "im2col",
             compute_dtype: str = "float32", pool_impl: str = "reshape"
             ) -> SmallCNN:
  """The CNN ``arch`` with a head padded to ``max_classes``.

  Args:
    arch: ``"lenet20"`` (20x20 inputs, the paper's configuration) or ``"spot9"``
      (9x9 patches).
    max_classes: head width; tasks with fewer classes mask the rest
      (``masked_logits``).
    conv_impl: ``"im2col"`` (default: fastest under vmap on XLA:CPU), ``"xla"``,
      ``"patches"``, ``"xla_vjp"`` (fastest on CPU with models looped) or
      ``"pallas"`` (GPU kernels without patch tensors).
    compute_dtype: ``"float32"`` (default) or ``"bfloat16"``: dtype of the
      convolutions and dense layers; parameters stay float32 and the outputs
      are float32.
    pool_impl: ``"reshape"`` (default, ``max_pool2``), ``"flax"``
      (``nn.max_pool``; same values, slower gradient on CPU) or ``"fused"``
      (conv1 + ReLU + pool1 as ``conv_relu_pool``, which recomputes conv1 in
      the backward instead of saving its output; conv2's pool as ``"reshape"``).

  Returns:
    A flax.linen Module; ``apply`` returns ``(logits, features)``.
  """
  arch_spec(arch)
  if conv_impl not in CONV_IMPLS:
    raise ConfigError(f"Unknown conv_impl {conv_impl!r}; choose one of {CONV_IMPLS}.")
  if compute_dtype not in COMPUTE_DTYPES:
    raise ConfigError(f"Unknown compute_dtype {compute_dtype!r}; choose one of "
                      f"{COMPUTE_DTYPES}.")
  if pool_impl not in POOL_IMPLS:
    raise ConfigError(f"Unknown pool_impl {pool_impl!r}; choose one of {POOL_IMPLS}.")
  if int(max_classes) < 2:
    raise ConfigError(f"max_classes must be >= 2 (a task needs 2 classes), got "
                      f"{max_classes}.")
  return SmallCNN(arch, int(max_classes), conv_impl, compute_dtype, pool_impl)


def activation_floats_per_example(arch: str, conv_impl: str) -> int:
  """Rough count of float32 activations one example keeps for the backward pass.

  Used by the trainer's memory model (docs/notes/zoo.md). Counts each layer's
  output, plus the im2col patch tensors when ``conv_impl == "im2col"``.
  """
  spec = arch_spec(arch)
  s = spec.image_size
  p = s // 2
  total = s * s * 32 + p * p * 32 + p * p * 64  # conv1, pool1, conv2 outputs
  if spec.pool_after_conv2:
    total += (p // 2) * (p // 2) * 64
  if conv_impl not in ("xla", "xla_vjp"):
    total += s * s * 9  # conv1's patches (pallas too: one input channel)
  if conv_impl in ("im2col", "patches"):
    total += p * p * 9 * 32  # conv2's patches
  elif conv_impl == "pallas":
    total += (p + 2) * (p + 2) * (32 + 64)  # flat padded input and output
  return total + 2 * FEATURE_DIM
