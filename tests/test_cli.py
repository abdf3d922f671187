"""transferjax.cli.use_cpu_cores: one JAX CPU device per core unless the user chose."""
import os
import subprocess
import sys

import pytest

_PROBE = ("import jax; from transferjax import cli; "
          "print(cli.use_cpu_cores(), len(jax.devices('cpu')))")


def _probe(**env_changes):
  env = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", "TRANSFERJAX_CPU_DEVICES", "JAX_NUM_CPU_DEVICES")}
  env.update(env_changes)
  out = subprocess.run([sys.executable, "-c", _PROBE], env=env, check=True,
                       capture_output=True, text=True, timeout=120)
  return out.stdout.split()[-2:]


def test_sets_one_device_per_core_by_default():
  cores = os.cpu_count() or 1
  expected = [str(cores), str(cores)] if cores > 1 else ["None", "1"]
  assert _probe() == expected


@pytest.mark.parametrize("env,expected", [
    ({"TRANSFERJAX_CPU_DEVICES": "1"}, ["None", "1"]),
    ({"TRANSFERJAX_CPU_DEVICES": "3"}, ["3", "3"]),
    ({"XLA_FLAGS": "--xla_force_host_platform_device_count=5"}, ["None", "5"]),
])
def test_respects_the_users_choice(env, expected):
  assert _probe(**env) == expected
