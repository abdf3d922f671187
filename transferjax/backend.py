"""Backend policy: the one place that reads JAX's backend and resolves ``"auto"``.

Every backend-dependent default (convolution implementation, model loop, the
forward-only convolution of vmapped inference, whether Pallas kernels compile or
are interpreted, the k-NN block budget) asks ``platform()``, so a new backend or
a changed default is one edit here. The measurements behind each default are in
docs/notes/speed.md.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax

from transferjax.errors import ConfigError

# Flags whose value "auto" is resolved per backend by ``resolve_auto``.
AUTO_FLAGS = ("conv_impl", "pool_impl", "model_loop")


def platform() -> str:
  """JAX's default backend: ``"cpu"``, ``"gpu"`` or ``"tpu"``."""
  return jax.default_backend()


def default_conv_impl() -> str:
  """``"xla_vjp"`` on a CPU backend, ``"im2col"`` elsewhere (docs/notes/speed.md:
  Eigen convolutions looped over models on CPU; batched matmuls under vmap on
  GPUs, where vmapped ``lax.conv`` is a slow grouped convolution)."""
  return "xla_vjp" if platform() == "cpu" else "im2col"


def default_model_loop() -> str:
  """``"map"`` on a CPU backend, ``"vmap"`` elsewhere (docs/notes/speed.md)."""
  return "map" if platform() == "cpu" else "vmap"


def default_pool_impl() -> str:
  """``"reshape"`` on every backend: ``"fused"`` is 0.84x on CPU and unmeasured
  on GPUs (docs/notes/speed.md)."""
  return "reshape"


_DEFAULTS: dict[str, Callable[[], str]] = {
    "conv_impl": default_conv_impl, "pool_impl": default_pool_impl,
    "model_loop": default_model_loop}


def resolve_conv_impl(conv_impl: str) -> str:
  """``"auto"`` -> ``default_conv_impl()`` (no workdir to adopt from); other
  values unchanged."""
  return default_conv_impl() if conv_impl == "auto" else conv_impl


def resolve_model_loop(model_loop: str) -> str:
  """``"auto"`` -> ``default_model_loop()``; other values unchanged."""
  return default_model_loop() if model_loop == "auto" else model_loop


def resolve_auto(config: Any, recorded: Mapping[str, Any] | None = None) -> Any:
  """``config`` (a dataclass) with every ``AUTO_FLAGS`` field that is ``"auto"``
  replaced: by ``recorded[name]`` when given (a resumed workdir keeps its
  implementations), else by this backend's default."""
  for name in AUTO_FLAGS:
    if getattr(config, name) == "auto":
      config = dataclasses.replace(
          config, **{name: recorded[name] if recorded and name in recorded
                     else _DEFAULTS[name]()})
  return config


def inference_conv_impl(conv_impl: str) -> str:
  """The convolution for vmapped inference: ``xla_vjp`` differs from ``xla`` only
  in its backward pass, and vmapped (grouped) convolutions are slow on XLA:CPU,
  so forward-only stacks use im2col (same parameters, outputs equal to ~1e-6).
  So does a ``pallas`` zoo off GPU (Pallas would run interpreted)."""
  if conv_impl == "xla_vjp" or (conv_impl == "pallas" and platform() != "gpu"):
    return "im2col"
  return conv_impl


def check_conv_backend(conv_impl: str) -> None:
  """ConfigError unless ``conv_impl`` can train on this backend: ``"pallas"``
  compiles Triton kernels, so it needs a GPU (elsewhere Pallas would interpret
  them, thousands of times slower)."""
  if conv_impl == "pallas" and platform() != "gpu":
    raise ConfigError(
        f"conv_impl='pallas' trains with Triton GPU kernels, but JAX's backend is "
        f"{platform()!r}. Use --conv_impl=auto (xla_vjp on CPU, im2col "
        "on TPU), or run on a GPU. A zoo trained with pallas on a GPU can still be "
        "scored here (its features use im2col: same parameters).")


def pallas_interpreted() -> bool:
  """Whether Pallas kernels run in interpret mode (every backend but a GPU)."""
  return platform() != "gpu"
