"""The main job's setting: another seed draws other splits; bad sizes fail clearly."""
import os
import subprocess
import sys

import numpy as np

import testlib
from transferjax import study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_split_seed_draws_other_splits_and_keeps_old_signatures():
  pool = testlib.synthetic_pool()
  base = study.StudyConfig(workdir="/tmp/unused", zoo_dir="/tmp/unused", target="syn",
                           shots_per_class=3)
  moved = study.StudyConfig(workdir="/tmp/unused", zoo_dir="/tmp/unused", target="syn",
                            shots_per_class=3, split_seed=100)
  a, b = study._split(base, pool, 0), study._split(moved, pool, 0)
  # Same sizes, other labeled images: the draw moved, the protocol did not.
  assert a.sizes() == b.sizes()
  assert not np.array_equal(a.train.images, b.train.images)
  # Split s of split_seed 100 is split 100 + s of split_seed 0.
  np.testing.assert_array_equal(study._split(moved, pool, 1).train.images,
                                study._split(base, pool, 101).train.images)
  # Results made before the option existed (split_seed 0) stay reusable; another
  # draw cannot reuse them.
  assert "split_seed" not in study._signature(base, pool)
  assert study._signature(moved, pool)["split_seed"] == 100


def test_demo_refuses_fewer_sources_than_zoo_members():
  out = subprocess.run([sys.executable, "-m", "experiments.demo", "--num_tasks=2",
                        "--workdir=/tmp/tj_demo_bad"], cwd=ROOT,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"),
                       capture_output=True, text=True, timeout=240)
  assert out.returncode == 2, out.stderr[-2000:]
  assert "--num_tasks=2" in out.stderr and "full, few, short" in out.stderr
  assert "Traceback" not in out.stderr
