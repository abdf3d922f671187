"""Targets, paper splits, folds, source tasks and mixed pools."""
import json

import numpy as np
import pytest

from transferjax.data import (Dataset, SourceTask, binary_task, combine_pools,
                              load_dataset, load_target, make_source_tasks,
                              paper_split, split_class_counts, split_sizes_report,
                              stratified_folds, tasks_from_json, tasks_to_json)
from transferjax.errors import DataError


def _toy(counts, size=4, name="toy", seed=0):
  """A tiny data set with ``counts[c]`` examples of class c; pixel = row id."""
  labels = np.repeat(np.arange(len(counts)), counts)
  rng = np.random.default_rng(seed)
  labels = labels[rng.permutation(len(labels))]
  images = np.broadcast_to(
      (np.arange(len(labels)) / max(1, len(labels)))[:, None, None, None],
      (len(labels), size, size, 1))
  return Dataset(images, labels, tuple(f"c{c}" for c in range(len(counts))), name)


def _row_ids(ds):
  return ds.images[:, 0, 0, 0]


# --- binary targets ---------------------------------------------------------

def test_binary_task_and_target_specs():
  ds = _toy([5, 6, 7, 8])
  b = binary_task(ds, "c3", "c1")
  assert b.class_names == ("c3", "c1") and b.num_examples == 14
  np.testing.assert_array_equal(b.class_counts(), [8, 6])  # c3 is label 0.
  assert b.metadata["pair"]["positive"] == "c1"
  with pytest.raises(DataError, match=r"Class 'c9' is not in data set 'toy'.*c0, c1"):
    binary_task(ds, "c0", "c9")
  with pytest.raises(DataError, match="same class"):
    binary_task(ds, "c0", 0)


def test_load_target_specs():
  t = load_target("digits:3,5", image_size=8)
  assert t.class_names == ("3", "5") and t.name == "digits:3,5"
  base = load_dataset("digits", image_size=8)
  np.testing.assert_array_equal(t.class_counts(), base.class_counts()[[3, 5]])
  assert load_target("faces").class_names == ("non-face", "face")
  with pytest.raises(DataError, match="Class '11' is not in data set 'digits'"):
    load_target("digits:4,11", image_size=8)
  with pytest.raises(DataError, match="Unknown data set"):
    load_target("cifar:1,2")


def test_load_target_npz_path_with_pair(tmp_path):
  from transferjax import io
  path = str(tmp_path / "t.npz")
  io.save_npz(path, images=np.zeros((6, 5, 5), np.uint8) + np.arange(6)[:, None, None],
              labels=np.array([0, 1, 2, 0, 1, 2]))
  assert load_target(f"npz:{path}").num_classes == 3
  pair = load_target(f"npz:{path}:2,0")
  assert pair.class_names == ("2", "0") and pair.num_examples == 4


# --- paper split -------------------------------------------------------------

def test_paper_split_mnist_4v9_sizes(tmp_path_factory):
  cache = tmp_path_factory.getbasetemp() / "transferjax_cache"  # Session-shared.
  cache.mkdir(exist_ok=True)
  ds = load_target("mnist:4,9", cache_dir=str(cache))
  split = paper_split(ds, fraction=0.05, seed=0)
  # 1,000 images -> D_a 50 (25 per class) -> D_v round(0.15 * 25) = 4 per class.
  assert split.sizes() == {"train": 42, "val": 8, "test": 950}
  counts = split_class_counts(split)
  assert counts["val"]["4"] == counts["val"]["9"] == 4
  assert "D_v" in split_sizes_report(split)
  assert split.labeled.num_examples == 50


def test_paper_split_stratified_disjoint_and_seeded():
  ds = _toy([100, 300, 600])
  split = paper_split(ds, fraction=0.2, seed=3)
  ids = [set(_row_ids(p)) for p in (split.train, split.val, split.test)]
  assert sum(len(s) for s in ids) == 1000 and len(set.union(*ids)) == 1000
  # Each part has the pool's class proportions (to rounding).
  for part, total in ((split.labeled, 200), (split.val, 30)):
    np.testing.assert_allclose(part.class_counts(), np.array([0.1, 0.3, 0.6]) * total,
                               atol=1)
  again = paper_split(ds, fraction=0.2, seed=3)
  np.testing.assert_array_equal(_row_ids(again.val), _row_ids(split.val))
  other = paper_split(ds, fraction=0.2, seed=4)
  assert set(_row_ids(other.val)) != set(_row_ids(split.val))
  absolute = paper_split(ds, num_labeled=100, seed=0)
  assert absolute.labeled.num_examples == 100


def test_paper_split_too_small_names_class_and_fix():
  ds = _toy([100, 20])
  # 5% of 120 = 6 labeled -> c1 gets 1 -> 0 in D_v.
  with pytest.raises(DataError, match=r"class 'c1' \(20 examples\).*0 in D_v.*"
                                      r"smallest size that works is num_labeled="):
    paper_split(ds, fraction=0.05)
  try:
    paper_split(ds, fraction=0.05)
  except DataError as e:
    smallest = int(str(e).split("num_labeled=")[1].split(" ")[0])
  paper_split(ds, num_labeled=smallest)  # The advertised size works ...
  with pytest.raises(DataError):
    paper_split(ds, num_labeled=smallest - 1)  # ... and is the smallest.
  with pytest.raises(DataError, match="fraction must be in"):
    paper_split(ds, fraction=1.5)


# --- folds ------------------------------------------------------------------

def test_stratified_folds():
  labels = np.repeat([0, 1, 2], [10, 20, 7])
  folds = stratified_folds(labels, 3, seed=0)
  assert folds.shape == labels.shape and set(folds) == {0, 1, 2}
  for c, n in ((0, 10), (1, 20), (2, 7)):
    per_fold = np.bincount(folds[labels == c], minlength=3)
    assert per_fold.max() - per_fold.min() <= 1 and per_fold.sum() == n
  np.testing.assert_array_equal(folds, stratified_folds(labels, 3, seed=0))
  with pytest.raises(DataError, match="k must be"):
    stratified_folds(labels, 1)


# --- source tasks -------------------------------------------------------------

def test_source_tasks_structure():
  pool = _toy([30] * 12)
  tasks = make_source_tasks(pool, 20, min_classes=2, max_classes=5,
                            max_per_class=10, holdout_fraction=0.2, seed=7)
  sizes = set()
  for i, t in enumerate(tasks):
    assert t.task_id == i and t.pool == "toy"
    assert 2 <= t.num_classes <= 5 and len(set(t.classes)) == t.num_classes
    sizes.add(t.num_classes)
    assert len(t.train_indices) == 8 * t.num_classes
    assert len(t.holdout_indices) == 2 * t.num_classes
    assert not set(t.train_indices) & set(t.holdout_indices)
    labels = t.task_labels(pool.labels, t.train_indices)
    np.testing.assert_array_equal(np.bincount(labels), 8)
  assert len(sizes) >= 3  # Class counts really vary.


def test_task_i_independent_of_num_tasks_and_json_roundtrip():
  pool = _toy([20] * 8)
  few = make_source_tasks(pool, 3, seed=1, max_per_class=5)
  many = make_source_tasks(pool, 30, seed=1, max_per_class=5)
  for a, b in zip(few, many):
    assert a.classes == b.classes
    np.testing.assert_array_equal(a.train_indices, b.train_indices)
    np.testing.assert_array_equal(a.holdout_indices, b.holdout_indices)
  other_seed = make_source_tasks(pool, 30, seed=2, max_per_class=5)
  assert [t.classes for t in other_seed] != [t.classes for t in many]
  text = tasks_to_json(many)
  json.loads(text)  # Plain JSON.
  back = tasks_from_json(text)
  for a, b in zip(many, back):
    assert isinstance(b, SourceTask) and (a.task_id, a.pool, a.classes) == (
        b.task_id, b.pool, b.classes)
    np.testing.assert_array_equal(a.train_indices, b.train_indices)
    np.testing.assert_array_equal(a.holdout_indices, b.holdout_indices)


def test_source_task_bad_input():
  pool = _toy([10] * 4)
  with pytest.raises(DataError, match="min_classes=5 > max_classes=3"):
    make_source_tasks(pool, 2, min_classes=5, max_classes=3)
  with pytest.raises(DataError, match="max_classes=6 but pool 'toy' has only 4"):
    make_source_tasks(pool, 2, max_classes=6)
  with pytest.raises(DataError, match="min_classes=5 but pool 'toy' has only 4"):
    make_source_tasks(pool, 2, min_classes=5)
  with pytest.raises(DataError, match="at least 2 classes"):
    make_source_tasks(pool, 2, min_classes=1)
  with pytest.raises(DataError, match="num_tasks"):
    make_source_tasks(pool, 0)


# --- mixed pools ----------------------------------------------------------------

def test_combine_pools_and_tasks_from_one_subpool():
  a, b = _toy([10] * 3, name="a"), _toy([6] * 5, name="b")
  pool = combine_pools([a, b])
  assert pool.num_classes == 8 and pool.num_examples == 60
  assert pool.class_names[0] == "a/c0" and pool.class_names[3] == "b/c0"
  assert pool.metadata["pools"][1] == {"name": "b", "class_offset": 3,
                                       "num_classes": 5, "index_offset": 30,
                                       "num_examples": 30, "synthetic": False}
  np.testing.assert_array_equal(pool.images[30:], b.images)
  tasks = make_source_tasks(pool, 40, seed=0, holdout_fraction=0.0)
  assert {t.pool for t in tasks} == {"a", "b"}
  for t in tasks:
    offset, n = (0, 3) if t.pool == "a" else (3, 5)
    assert all(offset <= c < offset + n for c in t.classes)
    rows = np.concatenate([t.train_indices, t.holdout_indices])
    lo = 0 if t.pool == "a" else 30
    assert rows.min() >= lo and rows.max() < lo + 30
  only_b = make_source_tasks(pool, 10, seed=0, pool_weights={"b": 1.0})
  assert {t.pool for t in only_b} == {"b"}


def test_combine_pools_size_mismatch():
  with pytest.raises(DataError, match=r"'a' has 4x4 images but 'b' has 6x6.*image_size=4"):
    combine_pools([_toy([3, 3], size=4, name="a"), _toy([3, 3], size=6, name="b")])
  with pytest.raises(DataError, match="repeat"):
    combine_pools([_toy([3, 3]), _toy([3, 3])])
