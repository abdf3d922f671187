"""Tests of the zoo trainer: invariances, sharding, resume, errors, inference.

A tiny synthetic pool (20x20, 6 classes) and 4 tasks of 6-16 training rows; one
epoch of batch 8, so each model takes 1-2 steps. Trained zoos are cached per module.
"""
import dataclasses
import os
import shutil

import jax
import numpy as np
import pytest
import testlib

from transferjax.data.container import Dataset
from transferjax.data.tasks import SourceTask
from transferjax.errors import (CheckpointError, ConfigError, DataError,
                                TrainingError)
from transferjax.models import make_cnn
from transferjax.train import (ZooConfig, load_zoo, train_zoo, zoo_features,
                               zoo_logits)

CFG = ZooConfig(dataset="syn", num_tasks=4, max_classes=4, epochs=1, batch_size=8,
                steps_per_call=2, chunk_size=2)


_pool = testlib.synthetic_pool


def _tasks(pool):
  return testlib.class_subset_tasks(pool, np.random.default_rng(1),
                                    [(2, 8), (3, 5), (4, 4), (2, 3)], first_id=10)


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _assert_close(a, b, rtol=1e-5, atol=1e-5):
  # atol = 1% of the learning rate: Adam divides by sqrt(v), so a parameter whose
  # gradient is ~eps-sized turns float-rounding differences of the batched
  # matmuls (which differ with the vmap width) into update differences of up to
  # a fraction of lr; well-conditioned entries agree to rtol.
  for x, y in zip(_leaves(a), _leaves(b), strict=True):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def _assert_equal(a, b):
  for x, y in zip(_leaves(a), _leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


class _Killed(Exception):
  pass


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Zoos of the same 4 tasks, trained several ways (HIGHEST matmul precision)."""
  pool, root = _pool(), tmp_path_factory.mktemp("zoo")
  tasks = _tasks(pool)
  one = jax.devices()[:1]
  out = {"pool": pool, "tasks": tasks, "root": root}
  with jax.default_matmul_precision("highest"):
    # model_loop "auto" is "map" on CPU: over 4 devices that is the shard_map
    # runner (each device loops over its own models); "vmap" is split by SPMD.
    out["sharded4"] = train_zoo(dataclasses.replace(CFG, chunk_size=4), pool,
                                tasks, str(root / "sharded4"))
    out["sharded4_vmap"] = train_zoo(
        dataclasses.replace(CFG, chunk_size=4, model_loop="vmap"), pool, tasks,
        str(root / "sharded4_vmap"))
    out["chunk4"] = train_zoo(dataclasses.replace(CFG, chunk_size=4), pool, tasks,
                              str(root / "chunk4"), devices=one)
    out["chunk2"] = train_zoo(CFG, pool, tasks, str(root / "chunk2"), devices=one)
    out["alone"] = train_zoo(dataclasses.replace(CFG, num_tasks=1, chunk_size=1),
                             pool, [tasks[2]], str(root / "alone"), devices=one)

    def kill_after_first_chunk(info):
      if info["chunk"] == 0:
        raise _Killed()

    with pytest.raises(_Killed):
      train_zoo(CFG, pool, tasks, str(root / "resumed"), devices=one,
                progress_hook=kill_after_first_chunk)
    out["chunks_after_kill"] = sorted(os.listdir(root / "resumed" / "chunks"))
    out["resumed"] = train_zoo(CFG, pool, tasks, str(root / "resumed"), devices=one)
  return out


def test_zoo_shapes_order_and_metrics(runs):
  zoo = runs["chunk2"]
  assert zoo.num_models == 4 and zoo.max_classes == 4
  assert [t.task_id for t in zoo.tasks] == [10, 11, 12, 13]
  assert zoo.params["head"]["kernel"].shape == (4, 200, 4)
  assert zoo.params["conv1"]["kernel"].shape == (4, 3, 3, 1, 32)
  for name in ("train_loss", "train_accuracy", "holdout_loss", "holdout_accuracy"):
    assert zoo.metrics[name].shape == (4,)
    assert np.all(np.isfinite(zoo.metrics[name]))
  # The task order is kept although chunks group tasks by size.
  _assert_close(zoo.model_params(2), runs["alone"].model_params(0))


def test_sharded_over_4_devices_equals_one_device(runs):
  assert len(jax.devices()) == 4
  _assert_close(runs["sharded4"].params, runs["chunk4"].params)
  # vmap batches the convolutions (grouped), map does not: other summation
  # orders, and Adam turns rounding in near-zero gradients into up to ~lr-sized
  # steps in a handful of entries (1 in 1.28M off by 1.3e-5 when measured).
  _assert_close(runs["sharded4_vmap"].params, runs["chunk4"].params, atol=5e-5)


def test_chunk_size_2_equals_chunk_size_4(runs):
  _assert_close(runs["chunk2"].params, runs["chunk4"].params)
  for name in ("train_loss", "holdout_accuracy"):
    np.testing.assert_allclose(runs["chunk2"].metrics[name],
                               runs["chunk4"].metrics[name], rtol=1e-4, atol=1e-6)


def test_model_trained_alone_equals_model_in_chunk(runs):
  _assert_close(runs["alone"].model_params(0), runs["chunk4"].model_params(2))


def test_killed_run_resumes_to_identical_zoo(runs):
  # The kill came after chunk 0 was saved: its checkpoint and marker exist.
  assert runs["chunks_after_kill"] == ["chunk_00000", "chunk_00000.json"]
  _assert_equal(runs["resumed"].params, runs["chunk2"].params)
  for name, values in runs["chunk2"].metrics.items():
    np.testing.assert_array_equal(runs["resumed"].metrics[name], values)


def test_load_zoo_round_trip(runs):
  loaded = load_zoo(str(runs["root"] / "chunk2"))
  _assert_equal(loaded.params, runs["chunk2"].params)
  assert [t.task_id for t in loaded.tasks] == [10, 11, 12, 13]
  assert loaded.arch == "lenet20" and loaded.image_size == 20
  np.testing.assert_allclose(loaded.metrics["train_loss"],
                             runs["chunk2"].metrics["train_loss"], rtol=1e-6)


def test_holdout_accuracy_matches_numpy_from_zoo_logits(runs):
  zoo, pool = runs["chunk2"], runs["pool"]
  logits = zoo_logits(zoo, images=pool.images, devices=jax.devices()[:1])
  for i, task in enumerate(zoo.tasks):
    rows = task.holdout_indices
    pred = np.argmax(logits[i, rows], axis=1)
    assert pred.max() < task.num_classes  # Padded columns are masked.
    want = np.mean(pred == task.task_labels(pool.labels, rows))
    np.testing.assert_allclose(zoo.metrics["holdout_accuracy"][i], want, atol=1e-6)


def test_zoo_features_equals_per_model_apply(runs):
  zoo, pool = runs["chunk2"], runs["pool"]
  images = pool.images[:11]
  with jax.default_matmul_precision("highest"):
    feats = zoo_features(zoo.params, "lenet20", images, model_chunk=3)
    model = make_cnn("lenet20", 4)
    for i in range(4):
      _, want = model.apply({"params": zoo.model_params(i)}, images)
      np.testing.assert_allclose(feats[i], np.asarray(want), rtol=1e-5, atol=1e-5)
  assert feats.shape == (4, 11, 200)
  with pytest.raises(ConfigError, match="arch="):
    zoo_features(zoo.params, None, images)


def test_workdir_with_other_flags_is_refused(runs):
  workdir = str(runs["root"] / "chunk2")
  with pytest.raises(CheckpointError, match=r"epochs: workdir has 1, this run asks 2"
                     r".*new --workdir"):
    train_zoo(dataclasses.replace(CFG, epochs=2), runs["pool"], runs["tasks"],
              workdir, devices=jax.devices()[:1])
  with pytest.raises(CheckpointError, match="chunk_size"):
    train_zoo(dataclasses.replace(CFG, chunk_size=4), runs["pool"], runs["tasks"],
              workdir, devices=jax.devices()[:1])
  with pytest.raises(CheckpointError, match="other source tasks"):
    train_zoo(CFG, runs["pool"], runs["tasks"][::-1], workdir,
              devices=jax.devices()[:1])


def test_corrupt_chunk_names_path_and_fix(runs, tmp_path):
  workdir = tmp_path / "corrupt"
  shutil.copytree(runs["root"] / "chunk2", workdir)
  chunk = workdir / "chunks" / "chunk_00001"
  for dirpath, _, files in os.walk(chunk):
    for f in files:
      with open(os.path.join(dirpath, f), "wb") as fh:
        fh.write(b"garbage")
  with pytest.raises(CheckpointError, match=r"chunk_00001.*Rerun train_sources"):
    load_zoo(str(workdir))
  # train_sources repairs it: only the damaged chunk is retrained, identically.
  _assert_equal(train_zoo(CFG, runs["pool"], runs["tasks"], str(workdir),
                          devices=jax.devices()[:1]).params, runs["chunk2"].params)


def test_load_zoo_missing_or_incomplete(runs, tmp_path):
  with pytest.raises(CheckpointError, match="holds no zoo"):
    load_zoo(str(tmp_path / "nothing"))
  workdir = tmp_path / "incomplete"
  shutil.copytree(runs["root"] / "chunk2", workdir)
  os.unlink(workdir / "chunks" / "chunk_00001.json")
  with pytest.raises(CheckpointError, match="incomplete: chunk 1"):
    load_zoo(str(workdir))


def test_non_finite_loss_names_the_task(runs, tmp_path):
  pool = runs["pool"]
  images = pool.images.copy()
  task = runs["tasks"][1]
  images[task.train_indices[0]] = np.nan
  bad = Dataset(pool.images, pool.labels, pool.class_names, "syn")
  object.__setattr__(bad, "images", images)  # Dataset refuses NaN; force it.
  with pytest.raises(TrainingError,
                     match=r"source task\(s\) \[[0-9, ]*11[0-9, ]*\].*learning_rate"):
    train_zoo(CFG, bad, runs["tasks"], str(tmp_path / "nan"),
              devices=jax.devices()[:1])


def test_bad_inputs_raise_clear_errors(runs, tmp_path):
  pool, tasks = runs["pool"], runs["tasks"]
  with pytest.raises(ConfigError, match="No source tasks"):
    train_zoo(CFG, pool, [], str(tmp_path / "a"))
  one_class = SourceTask(0, "syn", (0, 1), [0, 1], [])
  object.__setattr__(one_class, "classes", (0,))  # SourceTask refuses it too.
  with pytest.raises(DataError, match="1 class"):
    train_zoo(CFG, pool, [one_class], str(tmp_path / "b"))
  small = Dataset(np.zeros((4, 16, 16, 1), np.float32), [0, 1, 0, 1], ["a", "b"], "s")
  with pytest.raises(ConfigError, match="16x16 images but image_size=20"):
    train_zoo(CFG, small, [SourceTask(0, "s", (0, 1), [0, 1], [2])],
              str(tmp_path / "c"))
  with pytest.raises(ConfigError, match="takes 20x20x1 images, got 16x16"):
    train_zoo(dataclasses.replace(CFG, image_size=16), small,
              [SourceTask(0, "s", (0, 1), [0, 1], [2])], str(tmp_path / "d"))
  with pytest.raises(ConfigError, match="raise --max_classes to >= 4"):
    train_zoo(dataclasses.replace(CFG, max_classes=3), pool, tasks,
              str(tmp_path / "e"))
  with pytest.raises(DataError, match="unique"):
    train_zoo(CFG, pool, [tasks[0], tasks[0]], str(tmp_path / "f"))
  with pytest.raises(DataError, match="outside the pool"):
    train_zoo(CFG, pool, [SourceTask(0, "syn", (0, 1), [0, 500], [])],
              str(tmp_path / "g"))
  assert not os.path.exists(tmp_path / "a")  # Nothing written on bad input.


def test_conv_impl_auto_is_backend_default_and_adopts_a_workdirs(runs, tmp_path):
  from transferjax import io  # pylint: disable=g-import-not-at-top
  # A fresh "auto" zoo on CPU records the CPU fast path.
  record = io.read_json(str(runs["root"] / "chunk2" / "zoo_config.json"))
  assert record["conv_impl"] == "xla_vjp" and record["pool_impl"] == "reshape"
  # A workdir made with im2col (the default before "auto") resumes under
  # "auto" and keeps im2col; naming another implementation is refused.
  pool, tasks = runs["pool"], runs["tasks"][:2]
  old = dataclasses.replace(CFG, conv_impl="im2col", num_tasks=2)
  one = jax.devices()[:1]
  first = train_zoo(old, pool, tasks, str(tmp_path), devices=one)
  again = train_zoo(dataclasses.replace(old, conv_impl="auto"), pool, tasks,
                    str(tmp_path), devices=one)
  _assert_equal(again.params, first.params)
  assert io.read_json(str(tmp_path / "zoo_config.json"))["conv_impl"] == "im2col"
  with pytest.raises(CheckpointError, match="conv_impl: workdir has 'im2col'"):
    train_zoo(dataclasses.replace(old, conv_impl="xla_vjp"), pool, tasks,
              str(tmp_path), devices=one)
  # A record from before pool_impl existed resumes under "auto" as "reshape"
  # (the only pool it could have used); naming "fused" for it is refused.
  before = dataclasses.replace(CFG, num_tasks=2, pool_impl="reshape")
  first = train_zoo(before, pool, tasks, str(tmp_path / "pre"), devices=one)
  legacy = io.read_json(str(tmp_path / "pre" / "zoo_config.json"))
  del legacy["pool_impl"]
  io.write_json(str(tmp_path / "pre" / "zoo_config.json"), legacy)
  again = train_zoo(dataclasses.replace(before, pool_impl="auto"), pool, tasks,
                    str(tmp_path / "pre"), devices=one)
  _assert_equal(again.params, first.params)
  with pytest.raises(CheckpointError, match="pool_impl: workdir has 'reshape'"):
    train_zoo(dataclasses.replace(before, pool_impl="fused"), pool, tasks,
              str(tmp_path / "pre"), devices=one)


def test_relative_workdir_trains_and_resumes(runs, tmp_path, monkeypatch):
  """The CLI's usual --workdir=runs/zoo is relative; orbax refuses relative
  checkpoint paths, which the absolute tmp dirs above never exercise."""
  monkeypatch.chdir(tmp_path)
  pool, tasks = runs["pool"], runs["tasks"][:2]
  cfg = dataclasses.replace(CFG, num_tasks=2)
  one = jax.devices()[:1]
  first = train_zoo(cfg, pool, tasks, "runs/zoo", devices=one)
  assert (tmp_path / "runs" / "zoo" / "chunks").is_dir()
  _assert_equal(train_zoo(cfg, pool, tasks, "runs/zoo", devices=one).params,
                first.params)
  _assert_equal(load_zoo("runs/zoo").params, first.params)
