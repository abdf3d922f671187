"""Zoo checkpoint storage: the workdir's record, chunk files, digests, restore.

A zoo workdir (layout in ``transferjax.train.zoo``) holds the record of the flags
that define the zoo (``zoo_config.json``), its tasks (``tasks.json``) and one
orbax checkpoint per chunk of models, each with a JSON sidecar of its task ids,
metrics and a SHA-256 per parameter leaf. ``restore_chunk`` is the one restore
path: the trainer (resume) and ``load_zoo`` both go through it, so every load
checks tasks, tree, shapes, digest and finiteness the same way.
"""
from __future__ import annotations

import hashlib
import math
import os
import shutil
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from transferjax import io
from transferjax.data.container import Dataset
from transferjax.data.tasks import SourceTask, tasks_from_json
from transferjax.errors import CheckpointError

# Flags that define the trained zoo (plus chunk_size, resolved, and the pool).
DEFINING_FLAGS = ("dataset", "image_size", "seed", "arch", "min_classes",
                  "max_classes", "max_per_class", "holdout_fraction", "epochs",
                  "batch_size", "learning_rate", "conv_impl", "pool_impl",
                  "compute_dtype", "model_loop")
# Values a record written before a flag existed implicitly had.
_RECORD_DEFAULTS = {"compute_dtype": "float32", "pool_impl": "reshape",
                    "conv_impl": "im2col"}
# Flags a record written before they were recorded cannot tell: such a record
# takes this run's value (unchecked). model_loop "auto" resolved by backend.
_RECORD_UNKNOWN = ("model_loop",)


def _pool_fingerprint(pool: Dataset) -> str:
  h = hashlib.sha256()
  h.update(np.ascontiguousarray(pool.images).tobytes())
  h.update(np.ascontiguousarray(pool.labels).tobytes())
  return h.hexdigest()[:16]


def _record(config: Any, pool: Dataset, tasks: Sequence[SourceTask],
            head: int, chunk: int) -> dict[str, Any]:
  rec = {name: getattr(config, name) for name in DEFINING_FLAGS}
  rec.update({"num_tasks": len(tasks), "head_classes": head, "chunk_size": chunk,
              "pool_name": pool.name, "pool_size": pool.num_examples,
              "pool_fingerprint": _pool_fingerprint(pool)})
  return rec


def _check_record(workdir: str, stored: dict[str, Any], wanted: dict[str, Any]) -> None:
  stored = {**_RECORD_DEFAULTS,
            **{k: wanted[k] for k in _RECORD_UNKNOWN if k in wanted}, **stored}
  differ = [k for k in sorted(set(stored) | set(wanted))
            if stored.get(k) != wanted.get(k)]
  if differ:
    what = "; ".join(f"{k}: workdir has {stored.get(k)!r}, this run asks "
                     f"{wanted.get(k)!r}" for k in differ)
    raise CheckpointError(
        f"{workdir} holds a zoo made with different flags ({what}). Use a new "
        f"--workdir for these flags, or rerun with the workdir's flags to resume "
        f"it.")


_RECORD_INTS = ("image_size", "head_classes", "chunk_size", "num_tasks")


def _read_record(workdir: str) -> dict[str, Any]:
  """``zoo_config.json`` of ``workdir``, checked: CheckpointError (what is wrong
  and what to do) for a truncated, non-JSON or implausible record."""
  path = os.path.join(workdir, "zoo_config.json")
  fix = ("It records the flags the zoo was trained with, so the zoo can neither "
         "be checked nor resumed without it: restore the file from a backup, or "
         "train the zoo again in a new --workdir.")
  try:
    record = io.read_json(path)
  except (OSError, ValueError) as e:
    raise CheckpointError(f"{path} is damaged (truncated or not JSON: "
                          f"{type(e).__name__}: {e}). {fix}") from e
  if not isinstance(record, dict):
    raise CheckpointError(f"{path} holds a {type(record).__name__}, not the zoo's "
                          f"flags. {fix}")
  missing = [k for k in ("arch",) + _RECORD_INTS if k not in record]
  if missing:
    raise CheckpointError(f"{path} lacks {missing}. {fix}")
  bad = [k for k in _RECORD_INTS
         if isinstance(record[k], bool) or not isinstance(record[k], int)
         or record[k] < 1]
  if bad:
    raise CheckpointError(
        f"{path} has invalid {', '.join(f'{k}={record[k]!r}' for k in bad)} "
        f"(each must be an integer >= 1). {fix}")
  return record


def _read_tasks(workdir: str) -> list[SourceTask] | None:
  """The tasks of ``tasks.json`` (None if missing); CheckpointError if damaged."""
  path = os.path.join(workdir, "tasks.json")
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      return tasks_from_json(f.read())
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(
        f"{path} is damaged (truncated or not a task list: {type(e).__name__}: "
        f"{e}). It lists the zoo's source tasks; rerun train_sources with the "
        f"zoo's flags and --workdir={workdir}: it rewrites the file after checking "
        "the flags.") from e


def _chunk_dir(workdir: str, k: int) -> str:
  # Absolute: orbax refuses relative checkpoint paths ("runs/zoo" is the usual
  # --workdir; the tests' tmp dirs are absolute, so only the CLI met this).
  return os.path.abspath(os.path.join(workdir, "chunks", f"chunk_{k:05d}"))


def _checkpointer():
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  return ocp.StandardCheckpointer()


def _chunk_done(workdir: str, k: int) -> bool:
  return (os.path.isdir(_chunk_dir(workdir, k))
          and os.path.exists(_chunk_dir(workdir, k) + ".json"))


def _clear_chunk(workdir: str, k: int) -> None:
  """Remove leftovers of an unfinished chunk (orbax temp dirs included)."""
  base = _chunk_dir(workdir, k)
  parent = os.path.dirname(base)
  if not os.path.isdir(parent):
    return
  for name in os.listdir(parent):
    path = os.path.join(parent, name)
    if name == os.path.basename(base) or name.startswith(os.path.basename(base) + "."):
      if os.path.isdir(path):
        shutil.rmtree(path)
      elif name != os.path.basename(base) + ".json":
        os.unlink(path)


def _leaf_name(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def params_digest(params: Any) -> dict[str, str]:
  """``{leaf path: sha256 hex}`` of every parameter leaf's bytes (C order).

  Written with each chunk's metadata and checked on every load, so a damaged
  array file is refused instead of loading as other, finite weights.
  """
  # Hashed through a byte view: no copy of the (up to GBs of) parameters.
  return {_leaf_name(path): hashlib.sha256(
              np.ascontiguousarray(np.asarray(leaf)).reshape(-1).view(np.uint8)
          ).hexdigest()
          for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


class ChunkDamagedError(CheckpointError):
  """A finished chunk's files are unreadable or differ from their digest:
  retraining the chunk (rerunning ``train_sources``) repairs it."""


def _save_chunk(workdir: str, k: int, params: Any, meta: dict[str, Any],
                writer: bool) -> None:
  ckptr = _checkpointer()
  # Collective in multi-host runs: every process calls it, orbax's primary writes.
  ckptr.save(_chunk_dir(workdir, k), {"params": params})
  ckptr.wait_until_finished()
  if writer:
    # Written last and atomically: its presence marks the chunk finished, and
    # its digest is what every later load checks the arrays against.
    io.write_json(_chunk_dir(workdir, k) + ".json",
                  {**meta, "sha256": params_digest(params)})


def _retrain_fix(workdir: str) -> str:
  return (f"Rerun train_sources with the same flags and --workdir={workdir}: it "
          "retrains only this chunk (same seed, same weights).")


def _load_chunk(workdir: str, k: int, abstract: Any, task_ids: list[int]
                ) -> tuple[Any, dict[str, Any]]:
  """Restore chunk ``k`` and verify it: its tasks, tree, shapes, content digest
  and finiteness (``restore_chunk`` wraps it for ``train_zoo`` and ``load_zoo``).

  Raises:
    ChunkDamagedError: unreadable files or a digest mismatch (retraining fixes
      it; ``train_zoo`` does so by itself).
    CheckpointError: the chunk holds other tasks, or non-finite parameters.
  """
  path = _chunk_dir(workdir, k)
  try:
    meta = io.read_json(path + ".json")
  except (OSError, ValueError) as e:
    raise ChunkDamagedError(
        f"Chunk {k} metadata {path}.json is unreadable ({type(e).__name__}: {e}). "
        f"{_retrain_fix(workdir)}") from e
  if not isinstance(meta, dict) or list(meta.get("task_ids", [])) != list(task_ids):
    got = meta.get("task_ids") if isinstance(meta, dict) else meta
    raise CheckpointError(
        f"Chunk checkpoint {path} holds tasks {got}, expected {task_ids}: it is "
        f"from another zoo. Delete {path} and {path}.json, then rerun "
        "train_sources with this zoo's flags and --workdir to retrain it.")
  try:
    restored = _checkpointer().restore(path)["params"]
    want = jax.tree.structure(abstract)
    if jax.tree.structure(restored) != want:
      raise ValueError("parameter tree differs from the architecture's")
    for got, exp in zip(jax.tree.leaves(restored), jax.tree.leaves(abstract)):
      if tuple(got.shape) != tuple(exp.shape) or got.dtype != exp.dtype:
        raise ValueError(f"array of shape {got.shape} {got.dtype}, expected "
                         f"{exp.shape} {exp.dtype}")
    restored = jax.tree.map(np.asarray, restored)
  except Exception as e:  # pylint: disable=broad-except
    raise ChunkDamagedError(
        f"Chunk checkpoint {path} is unreadable or corrupt ({type(e).__name__}: "
        f"{e}). {_retrain_fix(workdir)}") from e
  stored = meta.get("sha256")
  if stored is None:
    _warn_no_digest(workdir, k)
  else:
    digest = params_digest(restored)
    bad = sorted(n for n in set(stored) | set(digest)
                 if stored.get(n) != digest.get(n))
    if bad:
      raise ChunkDamagedError(
          f"Chunk {k} ({path}, source tasks {task_ids}) is damaged: the content "
          f"of {bad} differs from the digest written when it was trained. "
          f"{_retrain_fix(workdir)}")
  leaves = jax.tree.leaves(restored)
  finite = np.all([np.isfinite(x.reshape(len(task_ids), -1)).all(axis=1)
                   for x in leaves], axis=0)
  if not np.all(finite):
    bad_ids = [task_ids[i] for i in np.flatnonzero(~finite)]
    raise CheckpointError(
        f"Chunk {k} ({path}) holds NaN/inf parameters for source task(s) "
        f"{bad_ids}. Delete {path} and {path}.json and rerun train_sources with "
        "the same flags and --workdir to retrain it (if training diverges again, "
        "lower --learning_rate in a new --workdir).")
  return restored, meta


_WARNED_NO_DIGEST: set[str] = set()


def _warn_no_digest(workdir: str, k: int) -> None:
  """One warning per zoo: chunks written before digests existed load unverified."""
  key = os.path.abspath(workdir)
  if key not in _WARNED_NO_DIGEST:
    _WARNED_NO_DIGEST.add(key)
    logging.warning(
        "zoo %s: chunk %d (and possibly others) has no content digest (written by "
        "an older transferjax), so damage to its files cannot be detected; "
        "retrain the zoo in a new --workdir to get verified chunks.", workdir, k)


def _chunk_plan(tasks: Sequence[SourceTask], chunk: int) -> list[list[int]]:
  """Task positions per chunk: tasks sorted by size, so a chunk's models finish
  together and few masked steps are wasted."""
  sizes = np.array([len(t.train_indices) for t in tasks])
  order = np.argsort(sizes, kind="stable")
  num_chunks = int(math.ceil(len(tasks) / chunk))
  return [order[k * chunk:(k + 1) * chunk].tolist() for k in range(num_chunks)]


def _abstract_params(model, image_size: int, q: int) -> Any:
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          jnp.zeros((1, image_size, image_size, 1)))["params"]
  return jax.tree.map(lambda s: np.zeros((q,) + s.shape, s.dtype), shapes)


def _stack_tree(parts: list[tuple[list[int], Any]], q: int) -> Any:
  """Scatter per-chunk ``[c, ...]`` trees into one ``[q, ...]`` tree in task order."""
  first = parts[0][1]
  out = jax.tree.map(lambda x: np.zeros((q,) + x.shape[1:], x.dtype), first)
  for positions, tree in parts:
    for dst, src in zip(jax.tree.leaves(out), jax.tree.leaves(tree)):
      dst[np.asarray(positions)] = src
  return out


def restore_chunk(workdir: str, k: int, model, image_size: int,
                  tasks: Sequence[SourceTask], positions: list[int]
                  ) -> tuple[Any, dict[str, np.ndarray]]:
  """Chunk ``k`` of the zoo in ``workdir`` (models at task ``positions``):
  ``(params [c, ...], metrics {name: [c] float32})``, verified by ``_load_chunk``
  (whose errors it raises)."""
  abstract = _abstract_params(model, image_size, len(positions))
  params, meta = _load_chunk(workdir, k, abstract,
                             [tasks[i].task_id for i in positions])
  return params, {m: np.asarray(v, np.float32) for m, v in meta["metrics"].items()}
