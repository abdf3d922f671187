"""Backend policy: one reader of JAX's backend, every "auto" resolved in one place."""
from __future__ import annotations

import dataclasses
import pathlib

import jax
import pytest

from transferjax import backend
from transferjax.errors import ConfigError
from transferjax.train import ZooConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_only_backend_module_reads_jax_backend():
  readers = [str(p.relative_to(ROOT)) for p in (ROOT / "transferjax").rglob("*.py")
             if "default_backend(" in p.read_text(encoding="utf-8")]
  assert readers == ["transferjax/backend.py"]


def test_resolve_auto_adopts_record_then_backend_defaults():
  cfg = ZooConfig(conv_impl="auto", pool_impl="auto", model_loop="auto")
  fresh = backend.resolve_auto(cfg)
  assert jax.default_backend() == backend.platform() == "cpu"
  assert (fresh.conv_impl, fresh.pool_impl, fresh.model_loop) == (
      "xla_vjp", "reshape", "map")
  resumed = backend.resolve_auto(cfg, {"conv_impl": "im2col", "model_loop": "vmap"})
  assert (resumed.conv_impl, resumed.pool_impl, resumed.model_loop) == (
      "im2col", "reshape", "vmap")
  fixed = dataclasses.replace(cfg, conv_impl="xla")
  assert backend.resolve_auto(fixed, {"conv_impl": "im2col"}).conv_impl == "xla"


def test_cpu_policies():
  assert backend.inference_conv_impl("xla_vjp") == "im2col"
  assert backend.inference_conv_impl("pallas") == "im2col"
  assert backend.inference_conv_impl("xla") == "xla"
  assert backend.pallas_interpreted()
  with pytest.raises(ConfigError, match="conv_impl=auto"):
    backend.check_conv_backend("pallas")
