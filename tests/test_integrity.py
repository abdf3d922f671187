"""Integrity: a damaged zoo is never used, degenerate inputs never pass in silence.

One test (or more) per case of docs/notes/integrity.md: chunk digests, restored
NaN, recorded model loop, damaged metadata, output folders, umask, small pools,
misleading messages, k-NN ties and uninformative rankings. The zoo is the tiny
synthetic one of test_train_zoo (4 tasks, 2 chunks, one device).
"""
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import sys

import jax
import numpy as np
import pytest
import testlib

from transferjax import estimators as E
from transferjax import io
from transferjax.data import load_dataset, load_target, make_source_tasks, paper_split
from transferjax.data.container import Dataset
from transferjax.errors import (CheckpointError, ConfigError, DataError,
                                EstimatorError)
from transferjax.scoring.informative import ranking_warnings
from transferjax.train import ZooConfig, load_zoo, train_zoo
from transferjax.train import zoo as zoo_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = ZooConfig(dataset="syn", num_tasks=4, max_classes=4, epochs=1, batch_size=8,
                steps_per_call=2, chunk_size=2, model_loop="map")
ONE = jax.devices()[:1]


def _tasks(pool):
  return testlib.class_subset_tasks(pool, np.random.default_rng(1),
                                    [(2, 8), (3, 5), (4, 4), (2, 3)], first_id=10)


def _equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _files(folder):
  """``{relative path: (sha256, mtime_ns)}`` of every file under ``folder``."""
  out = {}
  for dirpath, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(dirpath, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, folder)] = (hashlib.sha256(f.read()).hexdigest(),
                                              os.stat(path).st_mtime_ns)
  return out


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
  pool = testlib.synthetic_pool()
  tasks = _tasks(pool)
  root = tmp_path_factory.mktemp("integrity")
  trained = train_zoo(CFG, pool, tasks, str(root / "zoo"), devices=ONE)
  return {"pool": pool, "tasks": tasks, "root": root, "zoo": trained,
          "dir": root / "zoo"}


def _copy(zoo, tmp_path, name="w"):
  dst = tmp_path / name
  shutil.copytree(zoo["dir"], dst)
  return dst


# --- 1. per-chunk content digest ------------------------------------------------


def _largest_data_file(chunk_dir):
  files = [os.path.join(d, f) for d, _, names in os.walk(chunk_dir) for f in names
           if f"{os.sep}d{os.sep}" in os.path.join(d, f) + os.sep]
  return max(files, key=os.path.getsize)


def test_digest_written_with_each_chunk(zoo):
  meta = io.read_json(str(zoo["dir"] / "chunks" / "chunk_00001.json"))
  positions = zoo_lib._chunk_plan(zoo["tasks"], 2)[1]
  part = jax.tree.map(lambda x: np.asarray(x)[positions], zoo["zoo"].params)
  assert meta["sha256"] == zoo_lib.params_digest(part)
  assert set(meta["sha256"]) == {"conv1/kernel", "conv1/bias", "conv2/kernel",
                                 "conv2/bias", "fc/kernel", "fc/bias",
                                 "head/kernel", "head/bias"}


def test_flipped_byte_is_refused_then_only_that_chunk_is_retrained(zoo, tmp_path):
  work = _copy(zoo, tmp_path)
  chunk1 = work / "chunks" / "chunk_00001"
  target = _largest_data_file(chunk1)
  with open(target, "r+b") as f:  # Flip one bit in the middle of the array data.
    f.seek(os.path.getsize(target) // 2)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0x10]))
  with pytest.raises(CheckpointError, match=r"(?s)Chunk 1 .*chunk_00001.*damaged"
                     r".*Rerun train_sources .*retrains only this chunk"):
    load_zoo(str(work))
  before = _files(work / "chunks" / "chunk_00000")
  again = train_zoo(CFG, zoo["pool"], zoo["tasks"], str(work), devices=ONE)
  _equal(again.params, zoo["zoo"].params)  # Retrained bit-identically.
  assert _files(work / "chunks" / "chunk_00000") == before  # Untouched.
  _equal(load_zoo(str(work)).params, zoo["zoo"].params)


def test_unreadable_chunk_is_retrained_by_train_sources(zoo, tmp_path):
  work = _copy(zoo, tmp_path)
  for dirpath, _, files in os.walk(work / "chunks" / "chunk_00001"):
    for f in files:
      with open(os.path.join(dirpath, f), "wb") as fh:
        fh.write(b"garbage")
  with pytest.raises(CheckpointError, match="chunk_00001.*unreadable or corrupt"):
    load_zoo(str(work))
  _equal(train_zoo(CFG, zoo["pool"], zoo["tasks"], str(work), devices=ONE).params,
         zoo["zoo"].params)


def test_chunk_without_digest_loads_with_one_warning(zoo, tmp_path, caplog):
  work = _copy(zoo, tmp_path)
  for k in (0, 1):
    path = str(work / "chunks" / f"chunk_{k:05d}.json")
    meta = io.read_json(path)
    del meta["sha256"]
    io.write_json(path, meta)
  with caplog.at_level(logging.WARNING):
    loaded = load_zoo(str(work))
  _equal(loaded.params, zoo["zoo"].params)
  assert sum("no content digest" in r.getMessage() for r in caplog.records) == 1


# --- 3. non-finite restored parameters --------------------------------------------


def test_restored_nan_chunk_is_refused_naming_tasks(zoo, tmp_path):
  work = _copy(zoo, tmp_path)
  positions = zoo_lib._chunk_plan(zoo["tasks"], 2)[1]
  ids = [zoo["tasks"][i].task_id for i in positions]
  params = jax.tree.map(lambda x: np.array(np.asarray(x)[positions]),
                        zoo["zoo"].params)
  params["fc"]["kernel"][1, 0, 0] = np.nan  # The second model of chunk 1.
  meta = io.read_json(str(work / "chunks" / "chunk_00001.json"))
  del meta["sha256"]
  zoo_lib._clear_chunk(str(work), 1)
  zoo_lib._save_chunk(str(work), 1, params, meta, True)  # A valid digest of NaN.
  with pytest.raises(CheckpointError, match=rf"NaN/inf parameters for source "
                     rf"task\(s\) \[{ids[1]}\]"):
    train_zoo(CFG, zoo["pool"], zoo["tasks"], str(work), devices=ONE)
  with pytest.raises(CheckpointError, match=rf"\[{ids[1]}\]"):
    load_zoo(str(work))


# --- 4. model_loop is part of the zoo's identity ----------------------------------


def test_model_loop_recorded_and_a_change_refused(zoo, tmp_path):
  record = io.read_json(str(zoo["dir"] / "zoo_config.json"))
  assert record["model_loop"] == "map"
  work = _copy(zoo, tmp_path)
  with pytest.raises(CheckpointError, match="model_loop: workdir has 'map', this "
                     "run asks 'vmap'"):
    train_zoo(dataclasses.replace(CFG, model_loop="vmap"), zoo["pool"],
              zoo["tasks"], str(work), devices=ONE)
  # "auto" adopts the workdir's loop; a record older than the flag resumes.
  _equal(train_zoo(dataclasses.replace(CFG, model_loop="auto"), zoo["pool"],
                   zoo["tasks"], str(work), devices=ONE).params, zoo["zoo"].params)
  del record["model_loop"]
  io.write_json(str(work / "zoo_config.json"), record)
  _equal(train_zoo(CFG, zoo["pool"], zoo["tasks"], str(work), devices=ONE).params,
         zoo["zoo"].params)


# --- 5. damaged metadata ----------------------------------------------------------


def test_truncated_zoo_config_is_a_clear_error(zoo, tmp_path):
  work = _copy(zoo, tmp_path)
  path = work / "zoo_config.json"
  path.write_text(path.read_text()[:40])
  with pytest.raises(CheckpointError, match="zoo_config.json is damaged.*new --workdir"):
    load_zoo(str(work))
  with pytest.raises(CheckpointError, match="zoo_config.json is damaged"):
    train_zoo(CFG, zoo["pool"], zoo["tasks"], str(work), devices=ONE)


def test_chunk_size_zero_in_record_is_a_clear_error(zoo, tmp_path):
  work = _copy(zoo, tmp_path)
  record = io.read_json(str(work / "zoo_config.json"))
  record["chunk_size"] = 0
  io.write_json(str(work / "zoo_config.json"), record)
  with pytest.raises(CheckpointError, match="chunk_size=0"):
    load_zoo(str(work))


def test_truncated_tasks_json_error_then_rewritten_on_resume(zoo, tmp_path):
  work = _copy(zoo, tmp_path)
  path = work / "tasks.json"
  original = path.read_text()
  path.write_text(original[:100])
  with pytest.raises(CheckpointError, match="tasks.json is damaged.*rerun train_sources"):
    load_zoo(str(work))
  _equal(train_zoo(CFG, zoo["pool"], zoo["tasks"], str(work), devices=ONE).params,
         zoo["zoo"].params)
  assert json.loads(path.read_text()) == json.loads(original)


# --- 6. output folders checked before any work -----------------------------------


def test_workdir_that_is_a_file_fails_before_any_work(tmp_path, monkeypatch):
  blocker = tmp_path / "afile"
  blocker.write_text("x")
  with pytest.raises(ConfigError, match="is an existing file"):
    io.check_output_dir(str(blocker))
  with pytest.raises(ConfigError, match="lies under .*afile, which is a file"):
    io.check_output_dir(str(blocker / "sub"))
  assert io.check_output_dir(str(tmp_path / "new" / "dir")) == str(
      tmp_path / "new" / "dir")

  def no_work(*a, **k):
    raise AssertionError("work started before the output folder was checked")

  import transferjax.data as data_lib
  from transferjax.scoring import job as job_lib
  from transferjax import study as study_lib
  monkeypatch.setattr(data_lib, "load_dataset", no_work)
  monkeypatch.setattr(job_lib, "open_zoo", no_work)
  monkeypatch.setattr(study_lib, "open_zoo", no_work)
  with pytest.raises(ConfigError, match="is an existing file"):
    zoo_lib.run(CFG, str(blocker))
  with pytest.raises(ConfigError, match="is an existing file"):
    job_lib.run(job_lib.RankRunConfig(zoo="z", workdir=str(blocker)))
  with pytest.raises(ConfigError, match="lies under"):  # The default <zoo>/rank/...
    job_lib.run(job_lib.RankRunConfig(zoo=str(blocker)))
  with pytest.raises(ConfigError, match="is an existing file"):
    study_lib.run_study(study_lib.StudyConfig(workdir=str(blocker), zoo_dir="z"))


def test_entry_point_with_file_workdir_is_one_line_at_once(tmp_path):
  blocker = tmp_path / "afile"
  blocker.write_text("x")
  out = subprocess.run(
      [sys.executable, "-m", "experiments.train_sources", f"--workdir={blocker}"],
      cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True,
      text=True, timeout=240)
  assert out.returncode == 2, out.stderr[-2000:]
  assert "--workdir" in out.stderr and "is an existing file" in out.stderr
  assert "Traceback" not in out.stderr and "zoo chunk" not in out.stderr


# --- 7. outputs get the user's umask ----------------------------------------------


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600),
                                        (0o002, 0o664)])
def test_outputs_get_the_umask(tmp_path, mask, mode):
  old = os.umask(mask)
  try:
    io.write_json(str(tmp_path / "a.json"), {"x": 1})
    io.save_npz(str(tmp_path / "b.npz"), x=np.zeros(2))
    with open(tmp_path / "plain.txt", "w") as f:
      f.write("x")
  finally:
    os.umask(old)
  for name in ("a.json", "b.npz", "plain.txt"):
    assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name


# --- 8. pools too small for source tasks ------------------------------------------


def test_three_image_pool_is_refused_naming_the_minimum():
  pool = Dataset(np.zeros((3, 20, 20, 1), np.float32), [0, 1, 0], ["a", "b"], "tiny")
  with pytest.raises(DataError, match=r"too small.*at least 2 classes with >= 3 "
                     r"images.*\(at least 6 images\)"):
    make_source_tasks(pool, 4)
  ok = Dataset(np.zeros((6, 20, 20, 1), np.float32), [0, 1] * 3, ["a", "b"], "ok")
  tasks = make_source_tasks(ok, 2)
  assert all(len(t.holdout_indices) == 2 for t in tasks)


def test_one_class_pool_is_not_told_to_lower_min_classes():
  pool = Dataset(np.zeros((30, 20, 20, 1), np.float32), [0] * 30, ["a"], "one")
  with pytest.raises(DataError) as e:
    make_source_tasks(pool, 4)
  assert "lower min_classes" not in str(e.value)
  assert "at least 2 classes" in str(e.value)


# --- 9. misleading messages -------------------------------------------------------


@pytest.mark.parametrize("spec", ["mnist:4", "mnist:4,,1", "mnist:4,9,"])
def test_malformed_class_list_is_named(spec):
  # "mnist:4,9,1" is a valid three-class target; one class or an empty entry is not.
  with pytest.raises(DataError, match=r"malformed class list .*mnist:4,9") as e:
    load_target(spec)
  assert "Unknown data set" not in str(e.value)


def test_tiny_target_is_told_it_is_too_small(tmp_path):
  path = str(tmp_path / "three.npz")
  np.savez(path, images=np.random.default_rng(0).random((3, 20, 20)),
           labels=np.array([0, 1, 0]))
  with pytest.raises(DataError, match="too small for any labeled size") as e:
    paper_split(load_target(f"npz:{path}"))
  assert "Lower fraction" not in str(e.value)


def test_rgba_npz_is_converted_to_gray(tmp_path):
  rng = np.random.default_rng(0)
  rgba = (rng.random((6, 20, 20, 4)) * 255).astype(np.uint8)
  path = str(tmp_path / "rgba.npz")
  np.savez(path, images=rgba, labels=np.arange(6) % 2)
  ds = load_dataset(f"npz:{path}")
  np.savez(str(tmp_path / "rgb.npz"), images=rgba[..., :3], labels=np.arange(6) % 2)
  np.testing.assert_array_equal(ds.images,
                                load_dataset(f"npz:{tmp_path / 'rgb.npz'}").images)


def test_k_too_large_fails_before_the_target_nets(monkeypatch):
  from transferjax.scoring import rank as rank_lib
  from transferjax.scoring.methods import RankConfig

  def no_training(*a, **k):
    raise AssertionError("target nets trained before --k was checked")

  monkeypatch.setattr(rank_lib, "build_scoring_set", no_training)
  pool = testlib.synthetic_pool()
  split = paper_split(Dataset(pool.images[:48], pool.labels[:48] % 2, ["a", "b"], "t"),
                      num_labeled=24)
  fake_zoo = type("Z", (), {"image_size": 20})()
  job = rank_lib.RankJob(rank=RankConfig(k=20))
  with pytest.raises(EstimatorError, match=r"Class\(es\) \[0, 1\] .* for --k=20"):
    rank_lib.score_zoo(fake_zoo, split, job)


# --- 2. k-NN estimators on ties; uninformative rankings ---------------------------

N = 300
TOL = 0.08  # nats: the k-NN estimators' spread at n = 300 (measured ~0.06).


def _features(kind, y, rng):
  if kind == "constant":
    return np.zeros((N, 1))
  if kind == "binary":  # Y with 20% of the bits flipped.
    return (y ^ (rng.random(N) < 0.2)).astype(np.float32)[:, None]
  if kind == "boolean_independent":
    return rng.random((N, 1)) < 0.5
  if kind == "duplicated":  # 30 distinct rows, each 10 times.
    return np.repeat(rng.normal(size=(N // 10, 3)), 10, axis=0)[rng.permutation(N)]
  if kind == "copy_of_y":
    return y[:, None].astype(np.float32)
  return y[:, None] + rng.normal(size=(N, 2))  # continuous


KINDS = ("constant", "binary", "boolean_independent", "duplicated", "copy_of_y",
         "continuous")


def _entropy(y):
  p = np.bincount(y) / len(y)
  return float(-(p * np.log(p)).sum())


@pytest.mark.parametrize("seed", [0, 1])
def test_mi_and_cmi_bounds_on_ties_and_constants(seed):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, N)
  h_y = _entropy(y)
  t_cases = {"continuous_t": (y + 1.5 * rng.normal(size=N))[:, None],
             "constant_t": np.zeros((N, 1)),
             "binary_t": (y ^ (rng.random(N) < 0.3)).astype(np.float32)[:, None]}
  for kind in KINDS:
    f = _features(kind, y, rng)
    mi = float(E.mi_knn(y, f))
    assert -TOL <= mi <= h_y + TOL, (kind, mi, h_y)
    for t_name, t in t_cases.items():
      h_yt = float(E.conditional_entropy_y_given_t(y, t, method="knn"))
      assert -TOL <= h_yt <= h_y + TOL, (t_name, h_yt)
      cmi = float(E.cmi_knn(y, f, t))
      assert -TOL <= cmi <= h_yt + TOL, (kind, t_name, cmi, h_yt)
  # Independent features: ~0, not the 1.5 nats (psi(3) - psi(1)) of exact ties.
  for kind in ("constant", "boolean_independent"):
    assert abs(float(E.mi_knn(y, _features(kind, y, rng)))) < TOL


def test_ranking_warnings_say_why_scores_mean_nothing():
  rng = np.random.default_rng(0)
  y = np.arange(40) % 2
  t = rng.normal(size=(40, 1))
  images = rng.random((40, 20, 20, 1))
  good = ranking_warnings(y, t, np.array([0.2, 0.1, 0.05]), "cmi_knn", 0.5, images)
  assert good == ([], [])
  warn, _ = ranking_warnings(y, t, np.array([0.01, 0.0, 0.02]), "cmi_knn", -0.0101,
                             images)
  assert any("already explains the labels" in w for w in warn)
  warn, notes = ranking_warnings(y, np.zeros((40, 1)), np.zeros(3), "cmi_knn", 0.69,
                                 np.zeros((40, 20, 20, 1)))
  assert any("identical" in w for w in warn)
  assert any("same score" in w for w in warn)
  assert any("unconditioned" in n for n in notes)
  warn, _ = ranking_warnings(y, t, np.array([-0.01, -0.03]), "cmi_knn", 0.5, images)
  assert any("<= 0" in w for w in warn)
  # Scores are never changed: the warnings only describe them.
  warn, _ = ranking_warnings(y, t, np.array([0.3, 0.1]), "logme", None, images)
  assert warn == []


def test_rank_job_on_a_constant_target_says_scores_mean_nothing(zoo, tmp_path,
                                                               capsys, monkeypatch):
  from transferjax.scoring import job as job_lib
  from transferjax.scoring import rank as rank_lib
  from transferjax.scoring.target import ScoringSet

  def constant_target_net(split, **kw):  # What N_t gives on constant images.
    labeled = split.labeled
    n = labeled.num_examples
    return ScoringSet(labeled.images, labeled.labels, np.zeros((n, 1), np.float32),
                      labeled.images, labeled.labels, np.arange(n) % 3, "crossfit")

  monkeypatch.setattr(rank_lib, "build_scoring_set", constant_target_net)
  path = str(tmp_path / "flat.npz")
  np.savez(path, images=np.full((40, 20, 20), 0.5, np.float32),
           labels=np.arange(40) % 2)
  out = job_lib.run(job_lib.RankRunConfig(
      zoo=str(zoo["dir"]), target=f"npz:{path}", workdir=str(tmp_path / "rank"),
      num_labeled=24))
  saved = io.read_json(str(tmp_path / "rank" / "ranking.json"))
  assert saved["informative"] is False
  assert any("identical" in w for w in saved["warnings"])
  assert any("unconditioned" in n for n in saved["notes"])
  assert len(saved["ranking"]) == 4  # Still written.
  assert "WARNING: these scores carry no information" in capsys.readouterr().out
  assert out["meta"]["warnings"] == saved["warnings"]


def test_study_report_lists_stored_warnings_first(tmp_path):
  from transferjax import study as study_lib
  # The per-split warnings as the StudyResult holds them (split 0 has none).
  assert study_lib._report_warnings([{}, {"cmi_knn": ["H(Y|T) = 0.0010 nats"]}]) == [
      "WARNING (cmi_knn, split 1): its scores carry no information. "
      "H(Y|T) = 0.0010 nats"]
