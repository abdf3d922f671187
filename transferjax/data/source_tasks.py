"""Source tasks: random class subsets of a pool, and mixed pools.

Task ``i`` draws everything from ``np.random.default_rng([seed, i])``, so it is
the same task whether 5 or 500 tasks are made (a zoo can grow without
retraining its first models).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from transferjax.data.container import Dataset
from transferjax.data.tasks import SourceTask
from transferjax.errors import DataError


def combine_pools(datasets: Sequence[Dataset],
                  names: Sequence[str] | None = None) -> Dataset:
  """Concatenates data sets into one pool with disjoint, prefixed classes.

  Args:
    datasets: pools of equal image size.
    names: pool names (default each ``Dataset.name``); must be distinct.

  Returns:
    Dataset named ``"a+b+..."`` whose class names are ``"<pool>/<class>"`` and
    ``metadata["pools"]`` lists ``{"name", "class_offset", "num_classes",
    "index_offset", "num_examples"}`` per pool, in order.
  """
  datasets = list(datasets)
  if not datasets:
    raise DataError("combine_pools: give at least one data set.")
  names = [d.name for d in datasets] if names is None else [str(n) for n in names]
  if len(names) != len(datasets):
    raise DataError(f"combine_pools: {len(names)} names for {len(datasets)} data sets.")
  if len(set(names)) != len(names):
    raise DataError(f"combine_pools: pool names {names} repeat; pass distinct names=.")
  first = datasets[0]
  for name, ds in zip(names, datasets):
    if ds.image_size != first.image_size or ds.images.shape[2] != first.images.shape[2]:
      raise DataError(
          f"combine_pools: pool {names[0]!r} has {first.image_size}x"
          f"{first.image_size} images but {name!r} has {ds.image_size}x"
          f"{ds.images.shape[2]}; load every pool with the same image_size= "
          f"(e.g. load_dataset({name!r}, image_size={first.image_size})).")
  pools, class_names, labels = [], [], []
  class_offset = index_offset = 0
  for name, ds in zip(names, datasets):
    pools.append({"name": name, "class_offset": class_offset,
                  "num_classes": ds.num_classes, "index_offset": index_offset,
                  "num_examples": ds.num_examples,
                  "synthetic": bool(ds.metadata.get("synthetic", False))})
    class_names.extend(f"{name}/{c}" for c in ds.class_names)
    labels.append(ds.labels + class_offset)
    class_offset += ds.num_classes
    index_offset += ds.num_examples
  return Dataset(np.concatenate([d.images for d in datasets]),
                 np.concatenate(labels), tuple(class_names), "+".join(names),
                 {"pools": pools, "source": "combine_pools",
                  "synthetic": any(p["synthetic"] for p in pools)})


def _pool_weights(pools: list[dict], weights) -> np.ndarray:
  if weights is None:
    w = np.ones(len(pools))
  elif isinstance(weights, Mapping):
    unknown = set(weights) - {p["name"] for p in pools}
    if unknown:
      raise DataError(f"pool_weights names {sorted(unknown)} are not pools of "
                      f"this pool ({[p['name'] for p in pools]}).")
    w = np.array([float(weights.get(p["name"], 0.0)) for p in pools])
  else:
    w = np.asarray(weights, np.float64)
    if w.shape != (len(pools),):
      raise DataError(f"pool_weights: {w.shape[0] if w.ndim else 1} weights for "
                      f"{len(pools)} pools.")
  if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
    raise DataError(f"pool_weights must be >= 0 with a positive sum, got {w.tolist()}.")
  return w / w.sum()


def min_rows_per_class(holdout_fraction: float) -> int:
  """Fewest images a class needs to give a task >= 1 training row and, when
  ``holdout_fraction > 0``, >= 1 holdout row (``round(holdout_fraction * m)``)."""
  if holdout_fraction <= 0:
    return 1
  return max(2, int(np.ceil(0.5 / holdout_fraction - 1e-9)))


def make_source_tasks(pool: Dataset, num_tasks: int, *, min_classes: int = 2,
                      max_classes: int | None = None,
                      max_per_class: int | None = None,
                      holdout_fraction: float = 0.2, seed: int = 0,
                      pool_name: str | None = None,
                      pool_weights: Sequence[float] | Mapping[str, float] | None = None,
                      ) -> list[SourceTask]:
  """Random class-subset tasks on ``pool``.

  Task ``i``: (on a combined pool, first a sub-pool drawn with
  ``pool_weights``, default uniform); a class count uniform in
  ``[min_classes, max_classes]``; that many distinct classes; per class up to
  ``max_per_class`` random examples, of which ``round(holdout_fraction * m)``
  (at most ``m - 1``) are held out. Indices are sorted rows of ``pool``.

  Args:
    pool: the source pool (a ``combine_pools`` result draws each task from
      one sub-pool).
    num_tasks: number of tasks (>= 1).
    min_classes: fewest classes per task (>= 2).
    max_classes: most classes per task (default: all of the (sub-)pool's). On a
      combined pool it is capped per sub-pool at that sub-pool's class count.
    max_per_class: cap on examples per class (None: all).
    holdout_fraction: share of each class held out for source accuracy.
    seed: task seed; task ``i`` uses ``np.random.default_rng([seed, i])``.
    pool_name: ``SourceTask.pool`` on a single pool (default ``pool.name``).
    pool_weights: sub-pool sampling weights (sequence or ``{name: weight}``).

  Returns:
    ``num_tasks`` SourceTasks with ``task_id = 0..num_tasks-1``.
  """
  if int(num_tasks) != num_tasks or num_tasks < 1:
    raise DataError(f"make_source_tasks: num_tasks must be an integer >= 1, got {num_tasks}.")
  if min_classes < 2:
    raise DataError(f"make_source_tasks: min_classes={min_classes}; a classification "
                    "task needs at least 2 classes, set min_classes >= 2.")
  if max_classes is not None and min_classes > max_classes:
    raise DataError(f"make_source_tasks: min_classes={min_classes} > max_classes="
                    f"{max_classes}; set min_classes <= max_classes.")
  if max_per_class is not None and max_per_class < 1:
    raise DataError(f"make_source_tasks: max_per_class must be >= 1, got {max_per_class}.")
  if not 0.0 <= holdout_fraction < 1.0:
    raise DataError(f"make_source_tasks: holdout_fraction must be in [0, 1), got "
                    f"{holdout_fraction}.")

  combined = "pools" in pool.metadata
  if combined:
    pools = [dict(p) for p in pool.metadata["pools"]]
  else:
    pools = [{"name": pool_name or pool.name, "class_offset": 0,
              "num_classes": pool.num_classes}]
  counts = pool.class_counts()
  need = min_rows_per_class(holdout_fraction)
  for p in pools:
    classes = np.arange(p["class_offset"], p["class_offset"] + p["num_classes"])
    p["classes"] = classes[counts[classes] > 0]  # Classes with examples.
    available = len(p["classes"])
    usable = int(np.sum(counts[classes] >= need))
    if usable < 2:
      raise DataError(
          f"make_source_tasks: pool {p['name']!r} is too small for source tasks: "
          f"it has {int(counts[classes].sum())} images and {usable} class(es) with "
          f">= {need} images, but a task needs at least 2 classes with >= {need} "
          f"images each (>= 1 training and >= 1 holdout image per class at "
          f"holdout_fraction={holdout_fraction}). Use a pool with at least 2 "
          f"such classes (at least {2 * need} images).")
    if min_classes > available:
      raise DataError(f"make_source_tasks: min_classes={min_classes} but pool "
                      f"{p['name']!r} has only {available} classes with examples; "
                      f"lower min_classes to <= {available}.")
    if not combined and max_classes is not None and max_classes > available:
      raise DataError(f"make_source_tasks: max_classes={max_classes} but pool "
                      f"{p['name']!r} has only {available} classes; lower "
                      f"max_classes to <= {available}.")
    p["max"] = available if max_classes is None else min(max_classes, available)
  largest = max(len(p["classes"]) for p in pools)
  if combined and max_classes is not None and max_classes > largest:
    raise DataError(f"make_source_tasks: max_classes={max_classes} but the largest "
                    f"sub-pool has only {largest} classes; lower max_classes.")
  probs = _pool_weights(pools, pool_weights)
  by_class = {}  # Rows of each class, in pool order.
  order = np.argsort(pool.labels, kind="stable")
  bounds = np.concatenate([[0], np.cumsum(counts)])
  for c in range(pool.num_classes):
    by_class[c] = order[bounds[c]:bounds[c + 1]]

  tasks = []
  for i in range(int(num_tasks)):
    rng = np.random.default_rng([int(seed), i])
    p = pools[int(rng.choice(len(pools), p=probs))] if combined else pools[0]
    k = int(rng.integers(min_classes, p["max"] + 1))
    classes = np.sort(rng.choice(p["classes"], size=k, replace=False))
    train, holdout = [], []
    for c in classes:
      rows = rng.permutation(by_class[int(c)])
      if max_per_class is not None:
        rows = rows[:max_per_class]
      m = len(rows)
      n_hold = min(int(np.floor(holdout_fraction * m + 0.5)), m - 1)
      holdout.append(rows[:n_hold])
      train.append(rows[n_hold:])
    tasks.append(SourceTask(i, p["name"], tuple(int(c) for c in classes),
                            np.sort(np.concatenate(train)),
                            np.sort(np.concatenate(holdout))))
  return tasks
