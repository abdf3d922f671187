"""Fit many small CNNs at once with per-model early stopping.

This is the trainer for the two jobs that need early stopping: the target net
``N_t`` (one model, or K cross-fitting fold models) and the ground truth
(every source fine-tuned on ``D_t``, times seeds). Each model has its own
training and validation rows (index arrays into one device-resident image
array, padded to a common length), its own key, and its own early-stopping
state; a model whose patience ran out is masked (its state stops changing)
while the others go on, so one compiled epoch serves all of them.

The single-model epoch (``_epoch_one``) is written and tested on its own, then
lifted over the model axis by the many-model engine (``transferjax.train.engine``:
``lax.map`` on CPU, split over the CPU devices; ``jax.vmap`` on accelerators), and
early stopping is the engine's ``EarlyStopping`` policy over the active mask.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from transferjax import backend, progress
from transferjax.errors import ConfigError, TrainingError
from transferjax.models import make_cnn
from transferjax.train import engine, placement
from transferjax.train import step as step_lib

Params = Any


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """How the target net / fine-tuned nets are trained.

  Attributes:
    arch: model architecture (``transferjax.models.ARCHS``).
    max_classes: head width (2 for binary targets).
    batch_size: minibatch size.
    learning_rate: Adam step size.
    max_epochs: hard cap on epochs.
    patience: stop a model after this many epochs without a lower val loss.
    budgets: epochs at which test logits are also recorded (the fixed-budget
      ground truth, no early stopping).
    freeze_transferred: keep ``conv*`` parameters fixed (the "frozen" regime).
    conv_impl: ``"im2col"`` or ``"xla"``.
  """
  arch: str = "lenet20"
  max_classes: int = 2
  batch_size: int = 16
  learning_rate: float = 1e-3
  max_epochs: int = 60
  patience: int = 10
  budgets: tuple[int, ...] = (5, 10)
  freeze_transferred: bool = False
  conv_impl: str = "im2col"

  def __post_init__(self):
    if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
      raise ConfigError("batch_size, max_epochs and patience must be >= 1; got "
                        f"{self.batch_size}, {self.max_epochs}, {self.patience}.")
    if self.learning_rate <= 0:
      raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}.")


@flax.struct.dataclass
class FitResult:
  """What ``fit_models`` returns (numpy arrays, leading model axis ``[M]``).

  Attributes:
    params: the parameters at each model's best validation epoch.
    best_epoch: ``[M]`` epoch (1-based) of the lowest validation loss.
    epochs_run: ``[M]`` epochs each model trained before it stopped.
    best_val_loss: ``[M]``.
    eval_logits: ``[M, E, max_classes]`` logits of the best params on the eval rows.
    budget_logits: ``{epoch: [M, E, max_classes]}`` eval logits after exactly
      ``epoch`` epochs (models stopped earlier keep training up to each budget).
  """
  params: Params
  best_epoch: np.ndarray
  epochs_run: np.ndarray
  best_val_loss: np.ndarray
  eval_logits: np.ndarray | None
  budget_logits: dict


def _host(x: jax.Array) -> np.ndarray:
  """Host copy of an array on this process's devices (fitting never spans hosts)."""
  return np.asarray(jax.device_get(x))


def pad_index_sets(index_sets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """Stack ragged index arrays into ``[M, L]`` (padded with 0) and lengths ``[M]``."""
  lengths = np.array([len(ix) for ix in index_sets], dtype=np.int32)
  width = max(1, int(lengths.max()))
  out = np.zeros((len(index_sets), width), dtype=np.int32)
  for m, ix in enumerate(index_sets):
    out[m, :len(ix)] = ix
  return out, lengths


def _make_optimizer(cfg: FitConfig) -> optax.GradientTransformation:
  adam = step_lib.make_optimizer(cfg.learning_rate)
  if not cfg.freeze_transferred:
    return adam
  labels = lambda params: {name: ("frozen" if name.startswith("conv") else "train")
                           for name in params}
  return optax.multi_transform({"train": adam, "frozen": optax.set_to_zero()},
                               labels)


class _Fitter:
  """The jitted epoch, validation loss, logits and snapshot for one config and
  one ``("models",)`` mesh, all run on the many-model engine
  (``transferjax.train.engine``)."""

  def __init__(self, cfg: FitConfig, mesh: Mesh):
    self.cfg = cfg
    self.mesh = mesh
    self.model = make_cnn(cfg.arch, cfg.max_classes, cfg.conv_impl)
    self.tx = _make_optimizer(cfg)
    self.step = step_lib.make_train_step(self.model, self.tx)
    # "map" on XLA:CPU: one model after another inside the compiled epoch (a
    # stopped model skips it), each device of the mesh looping over its share;
    # "vmap" on accelerators (docs/notes/engine.md).
    self.model_loop = backend.default_model_loop()
    epoch = engine.over_models(self._epoch_one, 4, self.model_loop)
    if self.model_loop == "map":
      epoch = engine.shard_over_models(
          epoch, mesh, (True,) * 6 + (False,) * 3, (engine.MODELS, engine.MODELS))
    self.epoch = jax.jit(epoch, donate_argnums=(1,))
    self.loss = jax.jit(jax.vmap(self._loss_one, in_axes=(0, None, None, 0, 0, 0)))
    logits = engine.apply_models(self._logits_blocks, 1, self.model_loop)
    if self.model_loop == "map":
      logits = engine.shard_over_models(logits, mesh, (True, False), engine.MODELS)
    self._logits = jax.jit(logits)
    self.snapshot = jax.jit(engine.select_models, donate_argnums=(2,))
    self.models = NamedSharding(mesh, P("models"))
    self.shared = NamedSharding(mesh, P())

  def logits(self, params, images, block: int = 128) -> np.ndarray:
    """``[M, E, C]`` logits, ``block`` images at a time per model so activations
    stay small."""
    n = images.shape[0]
    block = max(1, min(block, n))  # A small eval set is not padded to a full block.
    blocks = -(-n // block)
    # One compiled shape per eval set: the last block is padded.
    images = jnp.pad(images, ((0, blocks * block - n), (0, 0), (0, 0), (0, 0)))
    images = images.reshape((blocks, block) + images.shape[1:])
    out = _host(self._logits(params, images))
    return out.reshape((out.shape[0], blocks * block) + out.shape[3:])[:, :n]

  def _logits_blocks(self, params, blocks):
    """``[B, block, C]`` logits of one model on ``[B, block, h, w, 1]`` images."""
    return jax.lax.map(lambda x: self._logits_one(params, x), blocks)

  def init_opt(self, params):
    return jax.vmap(self.tx.init)(params)

  def _logits_one(self, params, images):
    logits, _ = self.model.apply({"params": params}, images)
    return logits

  def _loss_one(self, params, images, labels, idx, length, num_classes):
    """Validation loss of one model on its rows ``idx[:length]``."""
    weights = (jnp.arange(idx.shape[0]) < length).astype(jnp.float32)
    logits = self._logits_one(params, images[idx])
    return step_lib.cross_entropy(logits, labels[idx], num_classes, weights)

  def _epoch_one(self, active, state, idx, length, num_classes, key, images,
                 labels, epoch):
    """One epoch of one model: a fresh permutation of its own rows, then steps.

    Args:
      active: bool scalar; an inactive model returns ``state`` unchanged.
      state: ``{"params", "opt"}``.
      idx: ``[L]`` this model's training rows (padded); length: valid count.
      num_classes: scalar; key: this model's key.
      images: ``[N, h, w, 1]`` shared pool; labels ``[N]``; epoch: int scalar.

    Returns:
      (new state, mean training loss of the epoch).
    """
    bsz = self.cfg.batch_size
    width = idx.shape[0]
    steps = -(-width // bsz)
    order = step_lib.epoch_permutation(jax.random.fold_in(key, epoch), length, width)
    order = jnp.pad(order, (0, steps * bsz - width))
    # The permutation puts the valid rows in the first ``length`` positions.
    valid = (jnp.arange(steps * bsz) < length).astype(jnp.float32)

    def step(st, s):
      pos = jax.lax.dynamic_slice_in_dim(order, s * bsz, bsz)
      w = jax.lax.dynamic_slice_in_dim(valid, s * bsz, bsz)
      rows = idx[pos]
      take = active & (jnp.sum(w) > 0)
      st, metrics = self.step(st, rows, images, labels[rows], num_classes, key,
                              take, w)
      return st, metrics["loss"]

    state, losses = jax.lax.scan(step, state, jnp.arange(steps))
    return state, jnp.mean(losses)


@functools.lru_cache(maxsize=16)
def _fitter(cfg: FitConfig, mesh: Mesh | None = None) -> "_Fitter":
  """One ``_Fitter`` (and so one set of compiled functions) per config and mesh
  (default: this process's devices; fine-tuning is not split over hosts)."""
  return _Fitter(cfg, mesh if mesh is not None
                 else placement.model_mesh(jax.local_devices()))


def fit_models(init_params: Params, images: np.ndarray, labels: np.ndarray,
               train_idx: np.ndarray, train_len: np.ndarray,
               val_idx: np.ndarray, val_len: np.ndarray,
               num_classes: np.ndarray, keys: jax.Array, cfg: FitConfig,
               eval_images: np.ndarray | None = None,
               names: list[str] | None = None,
               devices: Sequence[jax.Device] | None = None) -> FitResult:
  """Train ``M`` models at once with per-model early stopping on validation loss.

  Args:
    init_params: parameter pytree with a leading model axis ``[M, ...]``.
    images: ``[N, h, w, 1]`` float32, the rows every index points into.
    labels: ``[N]`` int class ids.
    train_idx, train_len: ``[M, L]`` padded training rows per model and ``[M]``
      counts.
    val_idx, val_len: ``[M, Lv]`` and ``[M]``: early-stopping rows per model.
    num_classes: ``[M]`` classes per model (heads padded to ``cfg.max_classes``).
    keys: ``[M]`` PRNG keys (one per model: batch order).
    cfg: the ``FitConfig``.
    eval_images: optional ``[E, h, w, 1]``: logits of the best params (and at
      each budget epoch) are returned for these.
    names: optional model names for error messages.
    devices: devices the models are split over (default: this process's; on a
      CPU with one device per core, ``transferjax.cli.use_cpu_cores``, each core
      trains its share of the models).

  Returns:
    A ``FitResult``.

  Raises:
    TrainingError: a model's training loss became NaN/inf (names the model).
  """
  num_models = int(np.asarray(train_len).shape[0])
  if np.any(np.asarray(train_len) < 1) or np.any(np.asarray(val_len) < 1):
    raise ConfigError("Every model needs at least one training and one "
                      "validation row.")
  # The compiled functions do not depend on the epoch/patience/budget fields;
  # normalizing them lets e.g. the target net and fine-tuning share one compile.
  fitter = _fitter(dataclasses.replace(cfg, max_epochs=1, patience=1, budgets=()),
                   None if devices is None else placement.model_mesh(devices))
  # The model axis is split over the mesh's devices: pad it with copies of
  # model 0 that never train.
  padded = engine.padded_count(num_models, fitter.mesh)
  on_models = lambda x: jax.device_put(engine.pad_models(x, padded), fitter.models)
  shared = lambda x, dtype=None: jax.device_put(jnp.asarray(x, dtype), fitter.shared)
  images, labels = shared(images, jnp.float32), shared(labels, jnp.int32)
  train_idx, train_len = on_models(train_idx), on_models(train_len)
  val_idx, val_len = on_models(val_idx), on_models(val_len)
  num_classes = on_models(jnp.asarray(num_classes, jnp.int32))
  keys = on_models(keys)
  # A copy: the epoch donates the state, which must not invalidate the caller's
  # arrays (init_params_stack returns device arrays that jnp.asarray would alias).
  params = on_models(jax.tree.map(lambda x: jnp.array(x, copy=True), init_params))
  state = {"params": params, "opt": fitter.init_opt(params)}
  best_params = jax.tree.map(jnp.copy, params)
  real = np.arange(padded) < num_models
  stopping = engine.EarlyStopping.start(padded, cfg.patience)
  stopping.active &= real
  budgets = sorted(b for b in cfg.budgets if b <= cfg.max_epochs)
  budget_logits = {}
  eval_dev = None if eval_images is None else shared(eval_images, jnp.float32)
  t0 = time.time()
  pbar = progress.bar(cfg.max_epochs, f"fit {num_models} models", "epoch")
  for epoch in range(1, cfg.max_epochs + 1):
    # Models keep training past early stopping only while a budget needs them.
    need_budget = bool(budgets) and epoch <= budgets[-1]
    active = stopping.active | (need_budget & real)
    if not active.any():
      break
    state, train_loss = fitter.epoch(jax.device_put(active, fitter.models), state,
                                     train_idx, train_len, num_classes, keys,
                                     images, labels, jnp.int32(epoch))
    train_loss = _host(train_loss)
    bad = active & ~np.isfinite(train_loss)
    if bad.any():
      who = [names[i] if names else str(i) for i in np.flatnonzero(bad)]
      raise TrainingError(
          f"Non-finite training loss at epoch {epoch} for model(s) {who[:10]}. "
          "Lower --learning_rate or check the inputs for NaN/inf.")
    val_loss = _host(fitter.loss(state["params"], images, labels,
                                           val_idx, val_len, num_classes))
    improved = stopping.update(epoch, val_loss)
    if improved.any():
      best_params = fitter.snapshot(jax.device_put(improved, fitter.models),
                                    state["params"], best_params)
    if eval_dev is not None and epoch in budgets:
      budget_logits[epoch] = fitter.logits(state["params"], eval_dev)[:num_models]
    pbar.set_postfix(training=int(active.sum()), refresh=False)
    pbar.update(1)
  pbar.close()
  epochs_run = stopping.epochs_run[:num_models]
  logging.info("fit_models: %d models, %d epochs max, %.1fs", num_models,
               int(epochs_run.max()), time.time() - t0)
  eval_logits = None
  if eval_dev is not None:
    eval_logits = fitter.logits(best_params, eval_dev)[:num_models]
  best_params = jax.tree.map(lambda x: _host(x)[:num_models], best_params)
  return FitResult(params=best_params,
                   best_epoch=stopping.best_epoch[:num_models],
                   epochs_run=epochs_run,
                   best_val_loss=stopping.best_loss[:num_models], eval_logits=eval_logits,
                   budget_logits=budget_logits)
