"""Inference over a stack of models: logits and penultimate features of ``q``
models with a leading ``[q]`` parameter axis, sharded over the devices.

The ``stack_*`` functions take the parameter stack and its architecture
explicitly. ``zoo_features`` / ``zoo_outputs`` / ``zoo_logits`` also take a
trained ``Zoo`` (anything with ``params``, ``arch``, ``conv_impl`` and
``tasks``); ``_stack_of`` is the one place that tells the two apart.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from transferjax import backend
from transferjax.errors import ConfigError
from transferjax.models import (FEATURE_DIM, check_image_size, make_cnn,
                                masked_logits)
from transferjax.train import placement
from transferjax.train import step as step_lib
from transferjax.train.placement import EVAL_BATCH


@functools.lru_cache(maxsize=8)
def _stack_apply(arch: str, head: int, conv_impl: str):
  return step_lib.make_stack_apply(make_cnn(arch, head, conv_impl), EVAL_BATCH)


def stack_outputs(params: Any, arch: str, images: np.ndarray, *,
                  conv_impl: str | None = None, num_classes=None,
                  model_chunk: int = 16,
                  devices: Sequence[jax.Device] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Head logits ``[q, n, head]`` and features ``[q, n, 200]`` of a stack, one pass.

  Args:
    params: parameter pytree with a leading ``[q]`` model axis.
    arch: the architecture.
    images: ``[n, s, s, 1]`` float32.
    conv_impl: the stack's convolution implementation (default im2col); the
      forward pass uses ``backend.inference_conv_impl`` of it.
    num_classes: ``[q]`` class counts: logit columns ``>= num_classes[i]`` are
      set to ``finfo.min`` (``masked_logits``); None: no masking.
    model_chunk: models per jitted call (bounds memory).
    devices: devices to shard the model axis over (default: all).
  """
  images = np.asarray(images, np.float32)
  check_image_size(arch, images.shape[1])
  head = int(params["head"]["kernel"].shape[-1])
  q = int(params["head"]["kernel"].shape[0])
  n = images.shape[0]
  mesh = placement.model_mesh(devices)
  sharded = NamedSharding(mesh, P("models"))
  apply = _stack_apply(arch, head,
                       backend.inference_conv_impl(conv_impl or "im2col"))
  padded_n = placement.round_up(n, EVAL_BATCH)
  x = np.zeros((padded_n,) + images.shape[1:], np.float32)
  x[:n] = images
  x = placement.put(x, NamedSharding(mesh, P()))
  size = placement.round_up(min(model_chunk, q), mesh.devices.size)
  logits, feats = [], []
  for s in range(0, q, size):
    part = jax.tree.map(lambda a: np.asarray(a[s:s + size]), params)
    c = part["head"]["kernel"].shape[0]
    part = jax.tree.map(
        lambda a: np.concatenate([a, np.repeat(a[:1], size - c, 0)]), part)
    lg, ft = apply(jax.tree.map(lambda a: placement.put(a, sharded), part), x)
    logits.append(placement.fetch(lg)[:c, :n])
    feats.append(placement.fetch(ft)[:c, :n])
  logits, feats = np.concatenate(logits), np.concatenate(feats)
  if num_classes is not None:
    nc = np.asarray(num_classes).reshape(-1, 1, 1)
    logits = np.asarray(masked_logits(jnp.asarray(logits), jnp.asarray(nc)))
  return logits, feats


def stack_features(params: Any, arch: str, images: np.ndarray,
                   **kwargs) -> np.ndarray:
  """Penultimate features ``N_i^{m-1}(x)`` of a stack: ``[q, n, 200]``
  (arguments as in ``stack_outputs``)."""
  _, feats = stack_outputs(params, arch, images, **kwargs)
  assert feats.shape[-1] == FEATURE_DIM
  return feats


def _stack_of(zoo_or_params, arch: str | None, conv_impl: str | None,
              num_classes) -> tuple[Any, str, str | None, Any]:
  """``(params, arch, conv_impl, num_classes)`` of a ``Zoo`` (its own values
  fill the unset ones) or of a bare parameter stack (``arch`` required)."""
  tasks = getattr(zoo_or_params, "tasks", None)
  if tasks is None:
    if arch is None:
      raise ConfigError("Pass arch= with a parameter stack (or pass a Zoo).")
    return zoo_or_params, arch, conv_impl, num_classes
  if num_classes is None:
    num_classes = [t.num_classes for t in tasks]
  return (zoo_or_params.params, zoo_or_params.arch,
          conv_impl or zoo_or_params.conv_impl, num_classes)


def zoo_features(zoo_or_params, arch: str | None = None,
                 images: np.ndarray | None = None, *, conv_impl: str | None = None,
                 model_chunk: int = 16,
                 devices: Sequence[jax.Device] | None = None) -> np.ndarray:
  """Penultimate features ``N_i^{m-1}(x)`` of every model: ``[q, n, 200]``.

  Args:
    zoo_or_params: a ``Zoo`` or a parameter stack with a leading ``[q]`` axis.
    arch: the architecture (ignored for a Zoo).
    images: ``[n, s, s, 1]`` float32.
    conv_impl: convolution implementation (default: the zoo's, or im2col).
    model_chunk: models per jitted call (bounds memory).
    devices: devices to shard the model axis over (default: all).
  """
  params, arch, conv_impl, _ = _stack_of(zoo_or_params, arch, conv_impl, None)
  return stack_features(params, arch, images, conv_impl=conv_impl,
                        model_chunk=model_chunk, devices=devices)


def zoo_outputs(zoo_or_params, arch: str | None = None,
                images: np.ndarray | None = None, *, num_classes=None,
                conv_impl: str | None = None, model_chunk: int = 16,
                devices: Sequence[jax.Device] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
  """Head logits ``[q, n, max_classes]`` and features ``[q, n, 200]``, one pass.

  Logit columns ``>= num_classes[i]`` are set to ``finfo.min`` (``masked_logits``);
  ``num_classes`` defaults to the zoo's task class counts for a ``Zoo`` and to no
  masking for a bare parameter stack. Other arguments as in ``zoo_features``.
  """
  params, arch, conv_impl, num_classes = _stack_of(zoo_or_params, arch,
                                                   conv_impl, num_classes)
  return stack_outputs(params, arch, images, conv_impl=conv_impl,
                       num_classes=num_classes, model_chunk=model_chunk,
                       devices=devices)


def zoo_logits(zoo_or_params, arch: str | None = None,
               images: np.ndarray | None = None, **kwargs) -> np.ndarray:
  """Head logits of every model, ``[q, n, max_classes]`` (see ``zoo_outputs``)."""
  return zoo_outputs(zoo_or_params, arch, images, **kwargs)[0]
