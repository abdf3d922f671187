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

Measurements: docs/notes/zoo.md.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from transferjax.errors import ConfigError

FEATURE_DIM = 200
CONV_IMPLS = ("xla", "im2col", "patches")


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


_CONV_FNS: dict[str, Callable] = {"xla": _conv_xla, "im2col": _conv_im2col,
                                  "patches": _conv_patches}


class Conv3x3(nn.Module):
  """3x3 SAME convolution with ``nn.Conv``'s parameters and either implementation."""
  features: int
  conv_impl: str = "im2col"

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    return _CONV_FNS[self.conv_impl](x, kernel) + bias


class SmallCNN(nn.Module):
  """conv1 -> pool -> conv2 (-> pool) -> fc (200, ReLU) -> head.

  ``__call__(x)`` takes ``[b, s, s, 1]`` and returns ``(logits [b, max_classes],
  features [b, 200])``; ``features`` is the penultimate layer ``N^{m-1}(x)``.
  """
  arch: str
  max_classes: int
  conv_impl: str = "im2col"

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
    x = nn.relu(Conv3x3(32, self.conv_impl, name="conv1")(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(Conv3x3(64, self.conv_impl, name="conv2")(x))
    if spec.pool_after_conv2:
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
    features = nn.relu(nn.Dense(FEATURE_DIM, name="fc")(x))
    logits = nn.Dense(self.max_classes, name="head")(features)
    return logits, features


def make_cnn(arch: str, max_classes: int, conv_impl: str = "im2col") -> SmallCNN:
  """The CNN ``arch`` with a head padded to ``max_classes``.

  Args:
    arch: ``"lenet20"`` (20x20 inputs, the paper's configuration) or ``"spot9"``
      (9x9 patches).
    max_classes: head width; tasks with fewer classes mask the rest
      (``masked_logits``).
    conv_impl: ``"im2col"`` (default: fastest under vmap on XLA:CPU), ``"xla"``
      or ``"patches"``.

  Returns:
    A flax.linen Module; ``apply`` returns ``(logits, features)``.
  """
  arch_spec(arch)
  if conv_impl not in CONV_IMPLS:
    raise ConfigError(f"Unknown conv_impl {conv_impl!r}; choose one of {CONV_IMPLS}.")
  if int(max_classes) < 2:
    raise ConfigError(f"max_classes must be >= 2 (a task needs 2 classes), got "
                      f"{max_classes}.")
  return SmallCNN(arch, int(max_classes), conv_impl)


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
  if conv_impl != "xla":
    total += s * s * 9 + p * p * 9 * 32  # patches of conv1 and conv2
  return total + 2 * FEATURE_DIM
