"""The main job's setting: the zoo union's members from configs/demo.py, another
seed draws other zoo tasks and splits; bad sizes and rbm on a union fail clearly."""
import os
import subprocess
import sys

import types

import numpy as np
import pytest

import testlib
from transferjax import config as config_lib
from transferjax import study
from transferjax.data import Dataset, paper_split
from transferjax.errors import ConfigError
from transferjax.train import zoo_union

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


def _members(name, seed=0, **zoo):
  cfg = config_lib.load(name)
  for k, v in zoo.items():
    cfg.zoo[k] = v
  return [(n, (z.num_tasks, z.epochs, z.max_per_class, z.seed, z.max_classes,
               z.batch_size, z.dataset))
          for n, z in zoo_union.member_configs(cfg.zoo, cfg.members, seed)]


def test_demo_config_members_and_seeds():
  pool = "mnist04+scenes_pool"
  # full: half of num_tasks, <= 50/class; few: a quarter, <= 6/class; short: a
  # quarter, one epoch; member seeds 100 * seed + i.
  assert _members("demo") == [("full", (8, 10, 50, 0, 20, 32, pool)),
                              ("few", (4, 10, 6, 1, 20, 32, pool)),
                              ("short", (4, 1, 50, 2, 20, 32, pool))]
  assert [z[3] for _, z in _members("demo", seed=3)] == [300, 301, 302]
  # The zoo's max_per_class caps every member; --zoo_epochs sets full and few.
  assert _members("smoke") == [("full", (2, 1, 10, 0, 20, 32, pool)),
                               ("few", (1, 1, 6, 1, 20, 32, pool)),
                               ("short", (1, 1, 10, 2, 20, 32, pool))]
  assert [z[0] for _, z in _members("demo", num_tasks=7)] == [3, 2, 2]
  demo = config_lib.load("demo")
  assert (demo.target, demo.shots_per_class, demo.seed) == ("faces", 16, 0)
  # 16 labeled images per class: 12 train, 4 for early stopping.
  pool = testlib.synthetic_pool()
  twice = Dataset(np.concatenate([pool.images] * 2), np.concatenate([pool.labels] * 2),
                  pool.class_names, "syn")
  split = paper_split(twice, shots_per_class=demo.shots_per_class,
                      val_fraction=demo.val_fraction)
  assert np.bincount(split.train.labels).tolist() == [12] * 6
  assert np.bincount(split.val.labels).tolist() == [4] * 6
  assert (demo.study.num_splits, demo.study.num_seeds) == (2, 3)
  assert "rbm" not in demo.study.methods
  with pytest.raises(ConfigError, match="full, few, short"):
    _members("demo", num_tasks=2)


def test_rbm_refuses_a_zoo_union(tmp_path):
  cfg = study.StudyConfig(workdir=str(tmp_path), zoo_dir="/tmp/some_union", target="syn",
                          shots_per_class=3)
  with pytest.raises(ConfigError, match="leave 'rbm' out"):
    study._rbm_params(cfg, types.SimpleNamespace(config={}))


def test_val_fraction_sizes_the_validation_set_and_keeps_old_signatures():
  pool = testlib.synthetic_pool()  # 12 images per class
  kw = dict(workdir="/tmp/unused", zoo_dir="/tmp/unused", target="syn", shots_per_class=9)
  base = study.StudyConfig(**kw)
  wide = study.StudyConfig(**kw, val_fraction=1 / 3)
  # 9 shots: the default 15% gives the floor of 2 validation images per class,
  # a third gives 3; the labeled total and the test set do not move.
  a, b = study._split(base, pool, 0), study._split(wide, pool, 0)
  assert (a.train.num_examples, a.val.num_examples) == (6 * 7, 6 * 2)
  assert (b.train.num_examples, b.val.num_examples) == (6 * 6, 6 * 3)
  np.testing.assert_array_equal(np.bincount(b.val.labels), [3] * 6)
  assert a.test.num_examples == b.test.num_examples
  # Default: old signatures unchanged (their results stay reusable); another
  # validation share cannot reuse them.
  assert "val_fraction" not in study._signature(base, pool)
  assert study._signature(wide, pool)["val_fraction"] == pytest.approx(1 / 3)


def test_rank_run_splits_with_its_val_fraction(monkeypatch, tmp_path):
  from transferjax.scoring import job as job_lib
  seen = {}

  class Stop(Exception):
    pass

  def fake_split(target, **kwargs):
    seen.update(kwargs)
    raise Stop

  monkeypatch.setattr(job_lib, "open_zoo", lambda path: types.SimpleNamespace(image_size=20))
  monkeypatch.setattr(job_lib, "load_target_for_zoo", lambda *a, **k: None)
  monkeypatch.setattr(job_lib, "paper_split", fake_split)
  with pytest.raises(Stop):
    job_lib.run(job_lib.RankRunConfig(zoo="/tmp/z", workdir=str(tmp_path / "rank"),
                                      shots_per_class=12, val_fraction=1 / 3))
  assert seen["val_fraction"] == pytest.approx(1 / 3) and seen["shots_per_class"] == 12
