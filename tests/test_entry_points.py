"""Entry points as a user runs them: bad input gives one clear line, exit 2.

Each runs in a subprocess (entry points define absl flags at import, so they
cannot share one process).
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=240):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (("experiments.rank", "--zoo=/nonexistent/zoo"),
     "No zoo at '/nonexistent/zoo'. Train one first"),
    (("experiments.evaluate", "--zoo=/nonexistent/zoo", "--workdir=/tmp/x"),
     "No zoo at"),
    (("experiments.train_sources", "--dataset=nosuchdata", "--smoke",
      "--workdir=/tmp/tj_bad_ds"), "nosuchdata"),
])
def test_bad_input_is_one_clear_line(args, message):
  out = _run(*args)
  assert out.returncode == 2, out.stderr[-2000:]
  assert message in out.stderr
  assert "Traceback" not in out.stderr


def test_bad_flag_value_is_rejected_by_absl():
  out = _run("experiments.rank", "--metric=manhattan")
  assert out.returncode != 0
  assert "manhattan" in out.stderr and "Traceback" not in out.stderr
