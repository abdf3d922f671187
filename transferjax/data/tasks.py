"""Source tasks (class subsets of a pool) and target splits: the shared types.

A source task is an index array into one pool data set plus its class list, so the
zoo trainer keeps one base array on the device and each model gathers its own
minibatches from it. Generators live in ``source_tasks.py`` and ``splits.py``.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from transferjax.data.container import Dataset
from transferjax.errors import DataError


@dataclasses.dataclass(frozen=True, eq=False)
class SourceTask:
  """One source task.

  Attributes:
    task_id: stable id; the model key is ``fold_in(root, task_id)``.
    pool: registry name of the pool the task draws from (e.g. ``"scenes"``).
    classes: pool class ids; task label ``j`` is pool class ``classes[j]``.
    train_indices: int ``[n_train]`` rows of the pool used for training.
    holdout_indices: int ``[n_holdout]`` rows held out for source accuracy.
  """
  task_id: int
  pool: str
  classes: tuple[int, ...]
  train_indices: np.ndarray
  holdout_indices: np.ndarray

  def __post_init__(self):
    object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
    object.__setattr__(self, "train_indices",
                       np.asarray(self.train_indices, dtype=np.int64))
    object.__setattr__(self, "holdout_indices",
                       np.asarray(self.holdout_indices, dtype=np.int64))
    if len(self.classes) < 2:
      raise DataError(
          f"Source task {self.task_id} has {len(self.classes)} class(es); a "
          "classification task needs at least 2. Raise min_classes to >= 2.")

  @property
  def num_classes(self) -> int:
    return len(self.classes)

  def task_labels(self, pool_labels: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Pool labels of ``indices`` remapped to ``0..num_classes-1``."""
    lookup = np.full(int(max(self.classes)) + 1, -1, dtype=np.int32)
    lookup[list(self.classes)] = np.arange(self.num_classes, dtype=np.int32)
    out = lookup[np.asarray(pool_labels)[indices]]
    if np.any(out < 0):
      raise DataError(f"Source task {self.task_id}: an index points at a class "
                      "outside the task's class list.")
    return out

  def to_json(self) -> dict[str, Any]:
    return {"task_id": int(self.task_id), "pool": self.pool,
            "classes": list(self.classes),
            "train_indices": self.train_indices.tolist(),
            "holdout_indices": self.holdout_indices.tolist()}

  @classmethod
  def from_json(cls, d: dict[str, Any]) -> "SourceTask":
    return cls(int(d["task_id"]), str(d["pool"]), tuple(d["classes"]),
               np.asarray(d["train_indices"], dtype=np.int64),
               np.asarray(d["holdout_indices"], dtype=np.int64))


def tasks_to_json(tasks: list[SourceTask]) -> str:
  return json.dumps([t.to_json() for t in tasks])


def tasks_from_json(text: str) -> list[SourceTask]:
  return [SourceTask.from_json(d) for d in json.loads(text)]


@dataclasses.dataclass(frozen=True, eq=False)
class TargetSplit:
  """A target task split the paper's way.

  Attributes:
    train: ``D_t`` (trains N_t and is what fine-tuning sees).
    val: ``D_v`` (early stopping; the paper's scoring set).
    test: ``D_e`` (ground-truth AUC).
    seed: the split seed.
  """
  train: Dataset
  val: Dataset
  test: Dataset
  seed: int = 0

  @property
  def labeled(self) -> Dataset:
    """``D_a = D_t + D_v``: all labeled target data (the cross-fitting set)."""
    return Dataset(np.concatenate([self.train.images, self.val.images]),
                   np.concatenate([self.train.labels, self.val.labels]),
                   self.train.class_names, self.train.name,
                   dict(self.train.metadata))

  def sizes(self) -> dict[str, int]:
    return {"train": self.train.num_examples, "val": self.val.num_examples,
            "test": self.test.num_examples}
