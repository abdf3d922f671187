"""Train a zoo of source CNNs at once: vmapped, sharded, chunked, resumable.

One jitted step trains a ``[C]`` chunk of models (``step.make_multi_step_runner``);
the model axis is sharded over every device. Chunks bound memory and are the unit
of checkpointing: each finished chunk is saved with orbax, so a killed run restarted
with the same command resumes at the first unfinished chunk. Model i's parameters
depend only on its task and the seed (keys ``fold_in(root, task_id)``), not on the
chunk size, the device count or its neighbours in the chunk.

This module is the chunked trainer (``train_zoo``, ``run``, ``load_zoo``).
Checkpoint storage is ``transferjax.train.checkpoints``, inference over a stack
``transferjax.train.inference``, device placement ``transferjax.train.placement``
and backend defaults ``transferjax.backend``; their public names are re-exported
here.

Workdir layout::

  zoo_config.json             the flags that define the zoo (checked on resume)
  tasks.json                  the source tasks (``SourceTask.to_json``)
  chunks/chunk_00003/         orbax checkpoint: {"params": [c, ...]} of the chunk
  chunks/chunk_00003.json     task ids of the chunk, their metrics and a SHA-256 of
                              each parameter leaf, checked on every load (written
                              last: its presence marks the chunk finished)
  metrics.json                per-model metrics of the whole zoo, in task order
  provenance.json             resolved config, commit, library versions, devices

Memory model (``models_per_chunk``): per model, float32 bytes of
``4 * n_params`` (params, grads, Adam m and v) plus ``3 * batch * a`` (forward
activations kept for the backward pass plus backward temporaries) plus
``eval_batch * a`` (evaluation), with ``a = activation_floats_per_example``; the
chunk is ``memory_budget_mb`` divided by that, rounded down to a multiple of the
device count (times the device count: the budget is per device).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from transferjax import backend
from transferjax import io
from transferjax import progress
from transferjax.data.container import Dataset
from transferjax.data.tasks import SourceTask, tasks_to_json
from transferjax.provenance import provenance
from transferjax.errors import (CheckpointError, ConfigError, DataError,
                                TrainingError)
from transferjax.models import (COMPUTE_DTYPES, CONV_IMPLS, POOL_IMPLS,
                                activation_floats_per_example, arch_spec,
                                check_image_size, make_cnn)
from transferjax.train import step as step_lib
# Checkpoint storage lives in transferjax.train.checkpoints; re-exported (with its
# private helpers, which tests and benchmarks call) for callers of this module.
from transferjax.train.checkpoints import (  # pylint: disable=unused-import
    DEFINING_FLAGS, _RECORD_DEFAULTS, ChunkDamagedError, _check_record,
    _chunk_dir, _chunk_done, _chunk_plan, _clear_chunk, _load_chunk, _read_record,
    _read_tasks, _record, _save_chunk, _stack_tree, params_digest, restore_chunk)
# Placement and stacked inference live in their own modules; re-exported.
from transferjax.train import placement
from transferjax.train.inference import (  # pylint: disable=unused-import
    stack_features, stack_outputs, zoo_features, zoo_logits, zoo_outputs)
from transferjax.train.placement import EVAL_BATCH, model_mesh
# Backend policy lives in transferjax.backend; re-exported for callers of this module.
from transferjax.backend import (check_conv_backend, default_conv_impl,  # pylint: disable=unused-import
                                 resolve_conv_impl, resolve_model_loop)

MAX_AUTO_CHUNK = 64


@dataclasses.dataclass(frozen=True)
class ZooConfig:
  """Flags of a zoo run.

  The first block defines the zoo (a workdir refuses a resume with other values);
  the second only says how to compute it.

  Attributes:
    dataset: source pool name for ``transferjax.data.load_dataset``.
    num_tasks: number of source tasks / models.
    image_size: input side (must be the arch's: 20 for lenet20, 9 for spot9).
    seed: task seed and training root seed.
    arch: ``"lenet20"`` or ``"spot9"``.
    min_classes: fewest classes per task.
    max_classes: most classes per task, and the head width (None: the pool's
      class count).
    max_per_class: examples per class cap (None: all).
    holdout_fraction: share of each class held out for source accuracy.
    epochs: passes over each task's own training rows.
    batch_size: minibatch size.
    learning_rate: Adam learning rate.
    conv_impl: ``"auto"`` (default), ``"im2col"``, ``"xla"``, ``"patches"``,
      ``"xla_vjp"`` or ``"pallas"`` (GPU only: Triton kernels without im2col
      patches; not the GPU default until measured faster) (same parameters, float-level differences, so the resolved
      value is part of the zoo's identity). ``"auto"`` adopts the workdir's when
      resuming, else ``"xla_vjp"`` on a CPU backend (fastest with
      ``model_loop="map"``) and ``"im2col"`` on accelerators (fastest under
      vmap): docs/notes/speed.md.
    pool_impl: ``"auto"`` (default), ``"reshape"``, ``"flax"`` or ``"fused"``
      (conv1 + ReLU + pool1 as one function that recomputes conv1 in the
      backward instead of saving its output; ``make_cnn``: a GPU memory-traffic
      lever, 0.84x on CPU, docs/notes/speed.md). ``"auto"`` adopts the
      workdir's when resuming (``"reshape"`` for workdirs older than the flag),
      else ``"reshape"``. Part of the zoo's identity (float-level differences).
    compute_dtype: ``"float32"`` or ``"bfloat16"`` (bf16 convolutions and dense
      layers, float32 master weights, Adam state and loss; part of the zoo's
      identity). Evaluation and ``zoo_features`` run in the same dtype as
      training for the metrics, float32 for features.
    chunk_size: models per chunk (0: from ``memory_budget_mb``; a resume adopts
      the workdir's).
    memory_budget_mb: per-device memory budget for the automatic chunk size.
    steps_per_call: optimizer steps per jitted call (``lax.scan`` length).
    unroll: ``lax.scan`` unroll factor.
    model_loop: ``"vmap"`` (batch the models: accelerators), ``"map"`` (loop
      over them inside the program: CPU) or ``"auto"`` (the workdir's when
      resuming, else ``"map"`` on a CPU backend and ``"vmap"`` elsewhere).
      Same results to float rounding, which training amplifies (measured:
      parameters differ by up to 1e-2), so the resolved value is part of the
      zoo's identity: a resume with another loop is refused.
    distributed: call ``jax.distributed.initialize()`` (multi-host).
  """
  dataset: str = "scenes"
  num_tasks: int = 32
  image_size: int = 20
  seed: int = 0
  arch: str = "lenet20"
  min_classes: int = 2
  max_classes: int | None = 20
  max_per_class: int | None = 50
  holdout_fraction: float = 0.2
  epochs: int = 15
  batch_size: int = 64
  learning_rate: float = 1e-3
  conv_impl: str = "auto"
  pool_impl: str = "auto"
  compute_dtype: str = "float32"
  chunk_size: int = 0
  memory_budget_mb: int = 2048
  steps_per_call: int = 32
  unroll: int = 1
  model_loop: str = "auto"
  distributed: bool = False


@dataclasses.dataclass(frozen=True, eq=False)
class Zoo:
  """A trained zoo.

  Attributes:
    params: pytree of numpy arrays with a leading ``[q]`` model axis, in task
      order.
    tasks: the ``q`` source tasks.
    arch: architecture name.
    image_size: input side.
    max_classes: head width (padded).
    metrics: ``{"train_loss", "train_accuracy", "holdout_loss",
      "holdout_accuracy"}``, each ``[q]`` (evaluated after training; holdout NaN
      for a task without holdout rows).
    config: the zoo-defining flags (``zoo_config.json``).
  """
  params: Any
  tasks: list[SourceTask]
  arch: str
  image_size: int
  max_classes: int
  metrics: dict[str, np.ndarray]
  config: dict[str, Any]

  @property
  def num_models(self) -> int:
    return len(self.tasks)

  @property
  def conv_impl(self) -> str:
    return self.config.get("conv_impl", "im2col")

  def model_params(self, i: int) -> Any:
    """Parameters of model ``i`` (no model axis)."""
    return jax.tree.map(lambda x: x[i], self.params)

  def features(self, images: np.ndarray, **kwargs) -> np.ndarray:
    """``zoo_features(self, images=images)``: ``[q, n, 200]``."""
    return zoo_features(self, images=images, **kwargs)

  def logits(self, images: np.ndarray, **kwargs) -> np.ndarray:
    """``zoo_logits(self, images=images)``: ``[q, n, max_classes]``, masked."""
    return zoo_logits(self, images=images, **kwargs)


# ----------------------------------------------------------------------------
# Chunk sizing and task arrays.
# ----------------------------------------------------------------------------


def bytes_per_model(arch: str, conv_impl: str, max_classes: int, batch_size: int,
                    eval_batch: int = EVAL_BATCH) -> int:
  """The memory model of one model in a chunk (module docstring)."""
  model = make_cnn(arch, max_classes, conv_impl)
  size = arch_spec(arch).image_size
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          jnp.zeros((1, size, size, 1)))
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
  a = activation_floats_per_example(arch, conv_impl)
  return 4 * (4 * n_params + 3 * batch_size * a + eval_batch * a)


def models_per_chunk(config: ZooConfig, max_classes: int, num_devices: int) -> int:
  """The chunk size: ``config.chunk_size`` or the memory model's, a multiple of
  ``num_devices`` (at most ``MAX_AUTO_CHUNK`` per device when automatic)."""
  if config.chunk_size < 0:
    raise ConfigError(f"chunk_size must be >= 0 (0 = automatic), got "
                      f"{config.chunk_size}.")
  if config.chunk_size:
    return int(math.ceil(config.chunk_size / num_devices) * num_devices)
  per_model = bytes_per_model(config.arch, resolve_conv_impl(config.conv_impl),
                              max_classes, config.batch_size)
  per_device = max(1, min(MAX_AUTO_CHUNK,
                          int(config.memory_budget_mb * 2**20 // per_model)))
  return per_device * num_devices


def num_steps(n: int, batch_size: int, epochs: int) -> int:
  """Steps a task of ``n`` rows trains for: ``epochs * ceil(n / batch_size)``."""
  return int(epochs * math.ceil(n / batch_size))


def task_arrays(tasks: Sequence[SourceTask], pool_labels: np.ndarray, which: str,
                length: int, batch_size: int, epochs: int) -> dict[str, np.ndarray]:
  """Stacked, padded task arrays (``step`` module docstring) for ``tasks``.

  Args:
    tasks: the tasks, one model each.
    pool_labels: int ``[N]`` pool labels (remapped to task labels here).
    which: ``"train"`` or ``"holdout"`` rows.
    length: padded length ``L`` (>= every task's row count).
    batch_size: minibatch size (for ``num_steps``).
    epochs: epochs (for ``num_steps``).

  Returns:
    ``{"idx", "labels": [q, L] int32, "n", "num_classes", "num_steps": [q]}``.
  """
  q = len(tasks)
  out = {"idx": np.zeros((q, length), np.int32),
         "labels": np.zeros((q, length), np.int32),
         "n": np.zeros((q,), np.int32), "num_classes": np.zeros((q,), np.int32),
         "num_steps": np.zeros((q,), np.int32)}
  for i, t in enumerate(tasks):
    rows = t.train_indices if which == "train" else t.holdout_indices
    out["idx"][i, :len(rows)] = rows
    out["labels"][i, :len(rows)] = t.task_labels(pool_labels, rows)
    out["n"][i] = len(rows)
    out["num_classes"][i] = t.num_classes
    out["num_steps"][i] = num_steps(len(t.train_indices), batch_size, epochs)
  return out


# ----------------------------------------------------------------------------
# Validation.
# ----------------------------------------------------------------------------


def _validate(config: ZooConfig, pool: Dataset, tasks: Sequence[SourceTask]) -> int:
  """Check inputs; returns the head width."""
  if not tasks:
    raise ConfigError("No source tasks to train: pass at least one SourceTask "
                      "(e.g. --num_tasks=32).")
  if config.compute_dtype not in COMPUTE_DTYPES:
    raise ConfigError(f"Unknown compute_dtype {config.compute_dtype!r}; choose one "
                      f"of {COMPUTE_DTYPES}.")
  if config.model_loop not in ("auto",) + step_lib.MODEL_LOOPS:
    raise ConfigError(f"Unknown model_loop {config.model_loop!r}; choose one of "
                      f"{('auto',) + step_lib.MODEL_LOOPS}.")
  if config.conv_impl not in ("auto",) + tuple(CONV_IMPLS):
    raise ConfigError(f"Unknown conv_impl {config.conv_impl!r}; choose one of "
                      f"{('auto',) + tuple(CONV_IMPLS)}.")
  if config.pool_impl not in ("auto",) + tuple(POOL_IMPLS):
    raise ConfigError(f"Unknown pool_impl {config.pool_impl!r}; choose one of "
                      f"{('auto',) + tuple(POOL_IMPLS)}.")
  for name in ("epochs", "batch_size", "steps_per_call", "unroll"):
    if getattr(config, name) < 1:
      raise ConfigError(f"{name} must be >= 1, got {getattr(config, name)}.")
  if not config.learning_rate > 0:
    raise ConfigError(f"learning_rate must be > 0, got {config.learning_rate}.")
  check_image_size(config.arch, config.image_size)
  if pool.images.shape[1:3] != (config.image_size, config.image_size):
    raise ConfigError(
        f"The pool {pool.name!r} has {pool.images.shape[1]}x{pool.images.shape[2]} "
        f"images but image_size={config.image_size} (arch {config.arch!r}). Load "
        f"the pool with image_size={config.image_size}.")
  ids = [t.task_id for t in tasks]
  if len(set(ids)) != len(ids):
    raise DataError("Source task ids must be unique (each model's key is "
                    "fold_in(root, task_id)); renumber the tasks.")
  for t in tasks:
    if t.num_classes < 2:
      raise DataError(f"Source task {t.task_id} has {t.num_classes} class(es); "
                      "a classification task needs at least 2 (min_classes >= 2).")
    if len(t.train_indices) == 0:
      raise DataError(f"Source task {t.task_id} has no training rows; raise "
                      "max_per_class or lower holdout_fraction.")
    rows = np.concatenate([t.train_indices, t.holdout_indices])
    if rows.min() < 0 or rows.max() >= pool.num_examples:
      raise DataError(f"Source task {t.task_id} indexes rows outside the pool "
                      f"{pool.name!r} ({pool.num_examples} rows): the tasks were "
                      "made for another pool.")
  most = max(t.num_classes for t in tasks)
  head = int(config.max_classes) if config.max_classes is not None else most
  if most > head:
    raise ConfigError(f"A source task has {most} classes but max_classes={head}; "
                      f"raise --max_classes to >= {most}.")
  return head


# ----------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------


# Model i's init key is fold_in(init_root, task_id) and its model key (whose
# fold_in(., step) is the step key) fold_in(train_root, task_id), with
# (init_root, train_root) = split(PRNGKey(seed)).
_fold = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(None, 0)))


@functools.lru_cache(maxsize=8)
def _programs(arch: str, head: int, conv_impl: str, image_size: int,
              learning_rate: float, batch_size: int, steps_per_call: int,
              unroll: int, eval_batch: int, mesh: Mesh,
              compute_dtype: str = "float32", model_loop: str = "vmap",
              pool_impl: str = "reshape"):
  """Jitted (init, runner, evaluator), cached so repeated calls (resumes, tests,
  notebooks) reuse the compiled executables."""
  model = make_cnn(arch, head, conv_impl, compute_dtype, pool_impl)
  tx = step_lib.make_optimizer(learning_rate)
  init_fn = jax.jit(jax.vmap(step_lib.make_init(model, tx, image_size)),
                    out_shardings=NamedSharding(mesh, P("models")))
  runner = step_lib.make_multi_step_runner(model, tx, batch_size, steps_per_call,
                                           unroll, model_loop, mesh)
  eval_model = make_cnn(arch, head, backend.inference_conv_impl(conv_impl), compute_dtype)
  return init_fn, runner, step_lib.make_evaluator(eval_model, eval_batch)


def train_zoo(config: ZooConfig, pool: Dataset, tasks: Sequence[SourceTask],
              workdir: str,
              progress_hook: Callable[[dict[str, Any]], None] | None = None,
              devices: Sequence[jax.Device] | None = None) -> Zoo:
  """Train one model per task (or resume), checkpointing every chunk.

  Args:
    config: the run's flags (``ZooConfig``).
    pool: the source pool; every task indexes its rows.
    tasks: one source task per model (task ids unique).
    workdir: checkpoint folder (created; resumed if it holds this zoo).
    progress_hook: called after each chunk with ``{"chunk", "num_chunks",
      "models_done", "num_models", "seconds"}`` (tests raise from it to simulate
      a killed run).
    devices: devices of the ``models`` mesh (default: all).

  Returns:
    The ``Zoo``, params in task order.

  Raises:
    ConfigError / DataError: bad flags or tasks.
    CheckpointError: a workdir from other flags, or a corrupt chunk.
    TrainingError: a non-finite loss (names the task ids).
  """
  tasks = list(tasks)
  io.check_output_dir(workdir)
  head = _validate(config, pool, tasks)
  mesh = model_mesh(devices)
  num_devices = mesh.devices.size
  writer = jax.process_index() == 0
  record_path = os.path.join(workdir, "zoo_config.json")
  tasks_path = os.path.join(workdir, "tasks.json")

  stored = _read_record(workdir) if os.path.exists(record_path) else None
  # "auto" implementations: a resume keeps the workdir's (records older than a
  # flag hold its only value then, _RECORD_DEFAULTS); a new zoo takes the
  # backend's default (transferjax.backend).
  recorded = None if stored is None else {**_RECORD_DEFAULTS, **stored}
  config = backend.resolve_auto(config, recorded)
  check_conv_backend(config.conv_impl)
  if stored is not None and config.chunk_size == 0 and stored.get("chunk_size"):
    # A resume keeps the workdir's chunks, whatever the device count now (each
    # chunk is padded to a multiple of the devices below).
    chunk = int(stored["chunk_size"])
  else:
    chunk = models_per_chunk(config, head, num_devices)
    # Balance the chunks (every chunk is padded to the same size: one compile).
    chunk = placement.round_up(math.ceil(len(tasks) / math.ceil(len(tasks) / chunk)),
                      num_devices)
  record = _record(config, pool, tasks, head, chunk)
  tasks_text = tasks_to_json(tasks)
  if stored is not None:
    _check_record(workdir, stored, record)
    try:
      stored_tasks = _read_tasks(workdir)
    except CheckpointError as e:
      # The record matched this run's flags and pool, which define the tasks
      # (each chunk's task ids are checked again on restore): rewrite it.
      logging.warning("%s; rewriting it from this run's tasks.", e)
      stored_tasks = None
      if writer:
        io.write_text(tasks_path, tasks_text)
    else:
      if (stored_tasks is None
          or json.loads(tasks_to_json(stored_tasks)) != json.loads(tasks_text)):
        raise CheckpointError(
            f"{tasks_path} is missing or lists other source tasks than this run. "
            "Use a new --workdir, or the same flags and pool as the workdir's.")
  elif writer:
    os.makedirs(workdir, exist_ok=True)
    io.write_text(tasks_path, tasks_text)
    io.write_json(record_path, record)  # Last: marks the workdir as this zoo's.

  model = make_cnn(config.arch, head, config.conv_impl)
  most_rows = max(max(len(t.train_indices), len(t.holdout_indices)) for t in tasks)
  eval_batch = min(EVAL_BATCH, placement.round_up(most_rows, 8))
  init_fn, runner, evaluate = _programs(
      config.arch, head, config.conv_impl, config.image_size,
      float(config.learning_rate), config.batch_size, config.steps_per_call,
      config.unroll, eval_batch, mesh, config.compute_dtype,
      config.model_loop, config.pool_impl)

  sharded = NamedSharding(mesh, P("models"))
  replicated = NamedSharding(mesh, P())
  images = None  # Put on the devices only if some chunk needs training.
  plan = _chunk_plan(tasks, chunk)
  len_train = placement.round_up(max(len(t.train_indices) for t in tasks), eval_batch)
  len_hold = placement.round_up(max(len(t.holdout_indices) for t in tasks), eval_batch)
  init_root, train_root = jax.random.split(jax.random.PRNGKey(config.seed))
  padded = placement.round_up(chunk, num_devices)

  parts, metric_parts = [], []
  start, done_models = time.time(), 0
  for k, positions in enumerate(plan):
    chunk_tasks = [tasks[i] for i in positions]
    task_ids = [t.task_id for t in chunk_tasks]
    restored = None
    if _chunk_done(workdir, k):
      try:
        restored = restore_chunk(workdir, k, model, config.image_size, tasks,
                                 positions)
      except ChunkDamagedError as e:
        logging.warning("zoo chunk %d/%d is damaged; retraining it: %s", k + 1,
                        len(plan), e)
    if restored is not None:
      params, chunk_metrics = restored
      parts.append((positions, params))
      metric_parts.append((positions, chunk_metrics))
      done_models += len(positions)
      logging.info("zoo chunk %d/%d: restored from %s", k + 1, len(plan),
                   _chunk_dir(workdir, k))
      continue
    if writer:
      _clear_chunk(workdir, k)
    if images is None:
      images = placement.put(pool.images, replicated)
    t_chunk = time.time()
    # Pad the chunk with copies of its first task that never train (num_steps 0).
    fill = chunk_tasks + [chunk_tasks[0]] * (padded - len(chunk_tasks))
    train_arrays = task_arrays(fill, pool.labels, "train", len_train,
                               config.batch_size, config.epochs)
    hold_arrays = task_arrays(fill, pool.labels, "holdout", len_hold,
                              config.batch_size, config.epochs)
    train_arrays["num_steps"][len(chunk_tasks):] = 0
    ids = np.array([t.task_id for t in fill], np.uint32)
    keys = placement.put(np.asarray(_fold(train_root, ids)), sharded)
    state = init_fn(placement.put(np.asarray(_fold(init_root, ids)), sharded))
    dev_train = {n: placement.put(v, sharded) for n, v in train_arrays.items()}
    active = placement.put(np.ones((padded,), bool), sharded)
    total = int(train_arrays["num_steps"].max())
    losses = []
    with progress.bar(total, f"zoo chunk {k + 1}/{len(plan)}", "step") as pbar:
      for t0 in range(0, total, config.steps_per_call):
        state, loss = runner(state, dev_train, keys, jnp.int32(t0), images, active)
        losses.append(loss)
        if pbar.disable:
          continue
        loss.block_until_ready()  # the bar counts finished steps, not dispatched
        pbar.update(min(config.steps_per_call, total - t0))
    params = state["params"]
    tr = evaluate(params, dev_train["idx"], dev_train["labels"], dev_train["n"],
                  dev_train["num_classes"], images)
    ho = evaluate(params, placement.put(hold_arrays["idx"], sharded),
                  placement.put(hold_arrays["labels"], sharded),
                  placement.put(hold_arrays["n"], sharded),
                  placement.put(hold_arrays["num_classes"], sharded), images)
    c = len(chunk_tasks)
    params = jax.tree.map(lambda x: placement.fetch(x)[:c], params)
    step_losses = (np.concatenate([placement.fetch(x) for x in losses])[:, :c]
                   if losses else np.zeros((0, c), np.float32))
    metrics = {"train_loss": placement.fetch(tr["loss"])[:c],
               "train_accuracy": placement.fetch(tr["accuracy"])[:c],
               "holdout_loss": placement.fetch(ho["loss"])[:c],
               "holdout_accuracy": placement.fetch(ho["accuracy"])[:c]}
    finite = (np.all(np.isfinite(step_losses), axis=0)
              & np.isfinite(metrics["train_loss"])
              & np.all([np.all(np.isfinite(x.reshape(c, -1)), axis=1)
                        for x in jax.tree.leaves(params)], axis=0))
    if not np.all(finite):
      bad = [task_ids[i] for i in np.flatnonzero(~finite)]
      raise TrainingError(
          f"Non-finite loss or parameters while training source task(s) {bad} "
          f"(chunk {k}). Lower --learning_rate (now {config.learning_rate}) or "
          "check those tasks' images for NaN/inf.")
    meta = {"chunk": k, "task_ids": task_ids,
            "num_steps": train_arrays["num_steps"][:c],
            "metrics": metrics}
    _save_chunk(workdir, k, params, meta, writer)
    parts.append((positions, params))
    metric_parts.append((positions, metrics))
    done_models += c
    elapsed = time.time() - start
    rate = c / max(time.time() - t_chunk, 1e-9)
    eta = (len(tasks) - done_models) / rate
    logging.info(
        "zoo chunk %d/%d: models %d/%d, %.2f models/s, chunk %.1fs, ETA %.0fs, "
        "mean train loss %.3f, mean holdout acc %.3f", k + 1, len(plan),
        done_models, len(tasks), rate, time.time() - t_chunk, eta,
        float(np.mean(metrics["train_loss"])),
        float(np.nanmean(metrics["holdout_accuracy"]))
        if np.any(np.isfinite(metrics["holdout_accuracy"])) else float("nan"))
    if progress_hook is not None:
      progress_hook({"chunk": k, "num_chunks": len(plan),
                     "models_done": done_models, "num_models": len(tasks),
                     "seconds": elapsed})

  params = _stack_tree(parts, len(tasks))
  metrics = _stack_tree(metric_parts, len(tasks))
  if writer:
    io.write_json(os.path.join(workdir, "metrics.json"),
                  {"task_ids": [t.task_id for t in tasks],
                   "num_classes": [t.num_classes for t in tasks], **metrics})
    # The resolved config, commit, versions and devices (and the entry point's
    # command, when there is one): how to retrain this zoo.
    io.write_json(os.path.join(workdir, "provenance.json"), provenance(config))
  return Zoo(params, tasks, config.arch, config.image_size, head, metrics, record)


def load_zoo(workdir: str) -> Zoo:
  """Load a finished zoo from ``workdir`` (CheckpointError if absent/incomplete)."""
  record_path = os.path.join(workdir, "zoo_config.json")
  tasks_path = os.path.join(workdir, "tasks.json")
  if not os.path.exists(record_path) or not os.path.exists(tasks_path):
    raise CheckpointError(
        f"{workdir} holds no zoo (no zoo_config.json / tasks.json). Train one "
        f"with `python -m experiments.train_sources --workdir={workdir}`.")
  record = _read_record(workdir)
  tasks = _read_tasks(workdir)
  if len(tasks) != record["num_tasks"]:
    raise CheckpointError(
        f"{tasks_path} lists {len(tasks)} tasks but zoo_config.json records "
        f"{record['num_tasks']}: the files are from different zoos. Rerun "
        f"train_sources with the zoo's flags and --workdir={workdir}.")
  model = make_cnn(record["arch"], record["head_classes"], record["conv_impl"])
  plan = _chunk_plan(tasks, int(record["chunk_size"]))
  parts, metric_parts = [], []
  for k, positions in enumerate(plan):
    if not _chunk_done(workdir, k):
      raise CheckpointError(
          f"The zoo in {workdir} is incomplete: chunk {k} ({_chunk_dir(workdir, k)}) "
          "is missing. Rerun train_sources with the same flags and --workdir to "
          "finish it.")
    params, chunk_metrics = restore_chunk(workdir, k, model, record["image_size"],
                                          tasks, positions)
    parts.append((positions, params))
    metric_parts.append((positions, chunk_metrics))
  return Zoo(_stack_tree(parts, len(tasks)), tasks, record["arch"],
             int(record["image_size"]), int(record["head_classes"]),
             _stack_tree(metric_parts, len(tasks)), record)


def run(config: ZooConfig, workdir: str,
        progress_hook: Callable[[dict[str, Any]], None] | None = None) -> Zoo:
  """Load the pool, make the source tasks and train (or resume) the zoo."""
  io.check_output_dir(workdir)
  if config.distributed:
    jax.distributed.initialize()
  # Imported here so the trainer does not need the loaders (and their data).
  # pylint: disable-next=g-import-not-at-top
  from transferjax.data import load_dataset, make_source_tasks
  check_image_size(config.arch, config.image_size)
  pool = load_dataset(config.dataset, image_size=config.image_size,
                      seed=config.seed)
  tasks = make_source_tasks(pool, config.num_tasks,
                            min_classes=config.min_classes,
                            max_classes=config.max_classes,
                            max_per_class=config.max_per_class,
                            holdout_fraction=config.holdout_fraction,
                            seed=config.seed)
  return train_zoo(config, pool, tasks, workdir, progress_hook=progress_hook)
