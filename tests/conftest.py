"""Test setup: 4 fake CPU devices (sharding tests) and fast compiles."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=4").strip()

import jax  # noqa: E402  (after the flags above)

# About 3x faster compiles for tiny test models (flax examples do the same).
jax.config.update("jax_disable_most_optimizations", True)
jax.config.update("jax_threefry_partitionable", True)

import pytest  # noqa: E402


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: long-running; run with -m slow")
