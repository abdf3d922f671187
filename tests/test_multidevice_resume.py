"""A zoo sharded over 4 devices, hard-killed after its first chunk, then resumed.

``test_train_zoo.py`` covers sharding (no interruption) and resume on one device
(an exception from the progress hook). This file covers the combination a
preempted accelerator job meets: the run is sharded over 4 (fake CPU) devices,
the process dies by SIGKILL (no ``finally``, no atexit, no orbax cleanup) right
after its first chunk's checkpoint, a half-written next chunk lies in the
workdir, and the same call resumes it, on 4 devices or on another device count.

The killed run is this file run as a script in a subprocess (``__main__`` below):
8 tasks in 2 chunks of 4, one model per device per chunk.
"""
import os
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
import testlib

from transferjax import io
from transferjax.data.container import Dataset
from transferjax.data.tasks import SourceTask
from transferjax.models import make_cnn
from transferjax.train import zoo as zoo_lib
from transferjax.train import (ZooConfig, load_zoo, make_init, make_optimizer,
                               train_zoo)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = ZooConfig(dataset="syn", num_tasks=8, max_classes=4, epochs=1, batch_size=8,
                steps_per_call=2, chunk_size=4)


_pool = testlib.synthetic_pool


def _tasks(pool: Dataset) -> list[SourceTask]:
  """8 tasks of 2-4 classes and 3-8 training rows per class (1-4 steps each)."""
  rng = np.random.default_rng(1)
  sizes = ((int(rng.integers(2, 5)), int(rng.integers(3, 9))) for _ in range(8))
  return testlib.class_subset_tasks(pool, rng, sizes, first_id=100)


def _setup_jax():
  """conftest.py's settings, for the subprocess (which does not load conftest)."""
  jax.config.update("jax_disable_most_optimizations", True)
  jax.config.update("jax_threefry_partitionable", True)


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _assert_equal(a, b):
  for x, y in zip(_leaves(a), _leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def _assert_close(a, b):
  """Equal to ~1e-6, but for a few Adam-amplified entries.

  Float rounding of the batched matmuls differs with the per-device vmap width
  (here 1 model per device vs 4 on one device). Adam divides by sqrt(v), so on an
  entry whose gradient is near zero such a rounding difference becomes an update
  difference of up to a fraction of the learning rate. Measured on this zoo: 4 of
  ~2.7M entries beyond 1e-5 (largest 8.7e-5), every other within 1e-6.
  """
  for x, y in zip(_leaves(a), _leaves(b), strict=True):
    np.testing.assert_allclose(x, y, rtol=0, atol=0.1 * CFG.learning_rate)
    loose = ~np.isclose(x, y, rtol=1e-6, atol=1e-6)
    assert loose.mean() <= 1e-4, (loose.sum(), loose.size)


def _kill_after_first_chunk(info):
  """The child's progress hook: die like a preempted host once chunk 0 is saved."""
  if info["chunk"] == 0:
    os.kill(os.getpid(), signal.SIGKILL)


def _child(workdir: str) -> None:
  _setup_jax()
  assert len(jax.devices()) == 4, jax.devices()
  pool = _pool()
  with jax.default_matmul_precision("highest"):
    train_zoo(CFG, pool, _tasks(pool), workdir,
              progress_hook=_kill_after_first_chunk)
  raise SystemExit("not killed")  # Unreachable when the hook works.


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The killed run's workdir, its resumes, and uninterrupted references."""
  assert len(jax.devices()) == 4, "conftest.py sets 4 fake CPU devices"
  root = tmp_path_factory.mktemp("multidevice_resume")
  pool = _pool()
  tasks = _tasks(pool)
  killed = root / "killed"
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.run([sys.executable, os.path.abspath(__file__), str(killed)],
                        cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=300, check=False)
  out = {"pool": pool, "tasks": tasks, "returncode": proc.returncode,
         "stderr": proc.stderr, "killed": killed}
  out["after_kill"] = sorted(os.listdir(killed / "chunks")) if (
      killed / "chunks").is_dir() else []
  # What a kill during chunk 1's save leaves: an orbax directory without the
  # chunk_00001.json marker (here a copy of chunk 0's, so restoring it would
  # give wrong parameters), and a stale orbax temp directory.
  if (killed / "chunks" / "chunk_00000").is_dir():
    shutil.copytree(killed / "chunks" / "chunk_00000",
                    killed / "chunks" / "chunk_00001")
    shutil.copytree(killed / "chunks" / "chunk_00000",
                    killed / "chunks" / "chunk_00001.orbax-checkpoint-tmp-1")
  shutil.copytree(killed, root / "killed_copy")

  trained = []
  hook = lambda info: trained.append(info["chunk"])
  two = jax.devices()[:2]
  with jax.default_matmul_precision("highest"):
    out["resumed4"] = train_zoo(CFG, pool, tasks, str(killed), progress_hook=hook)
    out["trained_on_resume"] = list(trained)
    out["resumed2"] = train_zoo(CFG, pool, tasks, str(root / "killed_copy"),
                                devices=two)
    out["straight4"] = train_zoo(CFG, pool, tasks, str(root / "straight4"))
  return out


def test_child_was_killed_after_first_chunk(runs):
  assert runs["returncode"] == -signal.SIGKILL, runs["stderr"][-2000:]
  # Chunk 0 is complete (orbax dir + marker); nothing of chunk 1 was written.
  assert runs["after_kill"] == ["chunk_00000", "chunk_00000.json"]


def test_resume_retrains_only_the_unfinished_chunk(runs):
  assert runs["trained_on_resume"] == [1]
  chunks = sorted(os.listdir(runs["killed"] / "chunks"))
  # The stale orbax temp dir is gone; chunk 1 is complete now.
  assert chunks == ["chunk_00000", "chunk_00000.json", "chunk_00001",
                    "chunk_00001.json"]


def test_resumed_sharded_zoo_equals_uninterrupted_sharded_zoo(runs):
  # Same program on the same 4 devices: bit-identical, whether a chunk was
  # trained in the killed process or in the resuming one.
  _assert_equal(runs["resumed4"].params, runs["straight4"].params)
  for name, values in runs["straight4"].metrics.items():
    np.testing.assert_array_equal(runs["resumed4"].metrics[name], values)
  assert [t.task_id for t in runs["resumed4"].tasks] == [
      t.task_id for t in runs["tasks"]]


def test_resume_on_another_device_count(runs):
  # A preempted 4-device job resumed on 2 devices (chunk 4 is a multiple of 2):
  # chunk 1 trains with 2 models per device, so it matches the uninterrupted
  # 4-device zoo to float rounding (``_assert_close``), not bit for bit.
  _assert_close(runs["resumed2"].params, runs["straight4"].params)
  for name, values in runs["straight4"].metrics.items():
    np.testing.assert_allclose(runs["resumed2"].metrics[name], values,
                               rtol=1e-6, atol=1e-6)
  # Chunk 0 was restored, not retrained: bit-identical to the killed run's.
  meta = io.read_json(str(runs["killed"] / "chunks" / "chunk_00000.json"))
  ids = [t.task_id for t in runs["tasks"]]
  chunk0 = [ids.index(i) for i in meta["task_ids"]]
  assert len(chunk0) == 4
  for x, y in zip(_leaves(runs["resumed2"].params), _leaves(runs["resumed4"].params)):
    np.testing.assert_array_equal(x[chunk0], y[chunk0])


def test_load_zoo_after_resume_equals_returned_zoo(runs):
  loaded = load_zoo(str(runs["killed"]))
  _assert_equal(loaded.params, runs["resumed4"].params)
  assert loaded.num_models == 8


def test_trained_models_changed_from_init(runs):
  # Guards the equalities above against a trainer that does nothing: every
  # model's parameters moved away from its initialization (zoo.py: init key
  # fold_in(init_root, task_id), (init_root, _) = split(PRNGKey(seed))).
  zoo = runs["straight4"]
  model = make_cnn(CFG.arch, CFG.max_classes, zoo_lib.resolve_conv_impl(CFG.conv_impl))
  init_root, _ = jax.random.split(jax.random.PRNGKey(CFG.seed))
  init = jax.jit(jax.vmap(make_init(model, make_optimizer(CFG.learning_rate),
                                     CFG.image_size)))
  ids = jax.numpy.array([t.task_id for t in runs["tasks"]], jax.numpy.uint32)
  params0 = init(jax.vmap(jax.random.fold_in, (None, 0))(init_root, ids))["params"]
  for a, b in zip(_leaves(params0), _leaves(zoo.params), strict=True):
    moved = np.abs(a - b).reshape(len(ids), -1).max(1)
    assert np.all(moved > 1e-4), moved


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path):
  """The multi-host path, rehearsed on CPU: 2 processes x 2 devices over gloo
  (``scripts/multi_gpu_train_sources.sh node``) give the zoo of 1 process x 4
  devices, bit for bit. About 1-2 min on 2 cores (two processes compiling)."""
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  flags = "--smoke --chunk_size=4"
  base = dict(os.environ, JAX_PLATFORMS="cpu", NUM_TASKS="4", TRAIN_FLAGS=flags,
              PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  multi = dict(base, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_CPU_COLLECTIVES="gloo", COORDINATOR=f"127.0.0.1:{port}",
               NUM_NODES="2", WORKDIR=str(tmp_path / "two"))
  script = os.path.join(ROOT, "scripts", "multi_gpu_train_sources.sh")
  procs = [subprocess.Popen(["bash", script, "node"], env=dict(multi, NODE_RANK=str(r)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True) for r in (1, 0)]
  logs = [p.communicate(timeout=600)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], logs[1][-3000:]
  assert "process 0/2: 2 local of 4 devices" in logs[1]
  assert "process 1/2: 2 local of 4 devices" in logs[0]
  single = dict(base, XLA_FLAGS="--xla_force_host_platform_device_count=4",
                WORKDIR=str(tmp_path / "one"))
  out = subprocess.run(["bash", script, "single"], env=single, capture_output=True,
                       text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  two, one = load_zoo(str(tmp_path / "two")), load_zoo(str(tmp_path / "one"))
  assert one.num_models == two.num_models == 4
  _assert_equal(two.params, one.params)


if __name__ == "__main__":
  _child(sys.argv[1])
