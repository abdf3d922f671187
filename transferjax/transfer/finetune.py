"""Ground truth: fine-tune every source on the target, and the no-transfer baseline.

For source ``i`` the target CNN gets the source's convolutional layers (the
paper transfers all conv layers) and fresh ``fc``/``head`` layers, then trains
on ``D_t`` with early stopping on ``D_v``; its test AUC on ``D_e`` is the ground
truth of ``i``. The no-transfer baseline is the same network from random init.
All sources x seeds (plus the baselines) train at once in ``fit_models``.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.metrics import roc_auc_score

from transferjax import io as tio
from transferjax.data.tasks import TargetSplit
from transferjax.errors import CheckpointError, ConfigError, DataError
from transferjax.models import make_cnn
from transferjax.transfer import gt_metrics
from transferjax.transfer.fit import FitConfig, fit_models, pad_index_sets

TRANSFERRED_PREFIX = "conv"
# Transferable layers from the input up: ``num_transferred=l`` copies the first l.
TRANSFERABLE_LAYERS = ("conv1", "conv2", "fc")


@functools.lru_cache(maxsize=16)
def _init_stack_fn(arch: str, max_classes: int, image_size: int, conv_impl: str):
  model = make_cnn(arch, max_classes, conv_impl)
  dummy = jnp.zeros((1, image_size, image_size, 1), jnp.float32)
  # Jitted: one compile per shape instead of dozens of eager op compiles.
  return jax.jit(jax.vmap(lambda k: model.init(k, dummy)["params"]))


def init_params_stack(arch: str, max_classes: int, keys: jax.Array,
                      image_size: int, conv_impl: str = "im2col"):
  """Fresh parameters for ``len(keys)`` models, stacked on a leading axis."""
  return _init_stack_fn(arch, int(max_classes), int(image_size), conv_impl)(keys)


def transplant(source_params, fresh_params, num_transferred: int | None = None):
  """``fresh_params`` with every ``conv*`` layer replaced by the source's.

  Args:
    source_params: source parameter pytree ``[M, ...]`` (any head width).
    fresh_params: target parameter pytree ``[M, ...]``.
    num_transferred: None (default: every ``conv*`` layer, the paper's choice)
      or ``l`` in 1..3: the first ``l`` of ``TRANSFERABLE_LAYERS``; the rest
      stay fresh.

  Returns:
    The target pytree with transferred convolutional layers.

  Raises:
    ConfigError: the source has no conv layers, or their shapes differ.
  """
  out = dict(fresh_params)
  conv_names = [k for k in fresh_params if k.startswith(TRANSFERRED_PREFIX)]
  if num_transferred is not None:
    if not 1 <= int(num_transferred) <= len(TRANSFERABLE_LAYERS):
      raise ConfigError(f"num_transferred must be in 1..{len(TRANSFERABLE_LAYERS)} "
                        f"(layers {TRANSFERABLE_LAYERS}), got {num_transferred}.")
    conv_names = list(TRANSFERABLE_LAYERS[:int(num_transferred)])
  for name in conv_names:
    if name not in source_params:
      raise ConfigError(
          f"Source parameters have no layer {name!r} (found {sorted(source_params)}); "
          "the zoo must come from transferjax.models with the same arch.")
    src_shapes = jax.tree.map(jnp.shape, source_params[name])
    dst_shapes = jax.tree.map(jnp.shape, fresh_params[name])
    if src_shapes != dst_shapes:
      raise ConfigError(f"Layer {name!r}: source shapes {src_shapes} differ from the "
                        f"target's {dst_shapes}; use the zoo's arch for the target.")
    out[name] = jax.tree.map(jnp.asarray, source_params[name])
  return out


def binary_auc(labels: np.ndarray, logits: np.ndarray) -> float:
  """Test AUC of a binary classifier from its ``[E, C]`` logits (class 1 positive)."""
  margin = np.asarray(logits[..., 1], np.float64) - np.asarray(logits[..., 0], np.float64)
  return float(roc_auc_score(np.asarray(labels), margin))


@dataclasses.dataclass(frozen=True)
class FinetuneOutcome:
  """Per-split ground truth (numpy).

  Attributes:
    auc: ``[q, S]`` test score after early stopping, per source and seed:
      AUC for binary targets, else the ``metric`` given (top-1 accuracy by
      default; the field keeps its name so stored results stay readable).
    no_transfer: ``[S]`` test AUC of the from-scratch net.
    epochs: ``[q, S]`` epochs run (early stopping) per source and seed.
    no_transfer_epochs: ``[S]``.
    budget_auc: ``{epoch: [q, S]}`` AUC after a fixed number of epochs.
    budget_no_transfer: ``{epoch: [S]}``.
    test_logits: ``[q, S, E, C]`` test logits of every fine-tuned source (for
      ensembles of sources).
  """
  auc: np.ndarray
  no_transfer: np.ndarray
  epochs: np.ndarray
  no_transfer_epochs: np.ndarray
  budget_auc: dict
  budget_no_transfer: dict
  test_logits: np.ndarray | None = None
  metric: str = "auc"
  secondary: dict = dataclasses.field(default_factory=dict)
  secondary_no_transfer: dict = dataclasses.field(default_factory=dict)


def finetune_sources(source_params, split: TargetSplit, *, num_seeds: int,
                     cfg: FitConfig, root_key: jax.Array,
                     model_chunk: int = 64,
                     num_transferred: int | None = None,
                     metric: str = "auto",
                     chunk_dir: str | None = None) -> FinetuneOutcome:
  """Fine-tune every source (and the no-transfer net) on one target split.

  Args:
    source_params: zoo parameter pytree with a leading source axis ``[q, ...]``.
    split: the target split (``D_t`` trains, ``D_v`` early-stops, ``D_e`` tests).
    num_seeds: fine-tuning seeds per source (fresh-layer init and batch order).
    cfg: training config; ``cfg.max_classes`` must cover the target's classes.
    root_key: key; model (source i, seed s) uses ``fold_in(fold_in(root, s), i)``
      and the no-transfer net of seed s uses source index ``q``.
    model_chunk: models per compiled call (bounds memory on large zoos).
    num_transferred: layers copied from the source (``transplant``); None: every
      conv layer.
    metric: ground-truth score (``gt_metrics``; ``"auto"``: AUC for binary
      targets, top-1 accuracy for multi-class ones).
    chunk_dir: if given, each finished chunk's results are stored there
      (``chunk_{start}.json``) and a rerun loads them instead of fine-tuning
      again: at 500 sources one split is hours of CPU, so a killed run resumes
      at its last chunk. The caller guards that the folder belongs to the same
      split, sources and config.

  Returns:
    A ``FinetuneOutcome``.
  """
  num_sources = int(jax.tree.leaves(source_params)[0].shape[0])
  if split.train.num_classes > cfg.max_classes:
    raise ConfigError(f"Target has {split.train.num_classes} classes but the "
                      f"fine-tuning head has {cfg.max_classes}.")
  num_classes = split.train.num_classes
  metric = gt_metrics.resolve_metric(metric, num_classes)
  extra = gt_metrics.secondary_metrics(metric, num_classes)
  if len(np.unique(split.test.labels)) < 2:
    raise DataError("The test split D_e has one class; a ground truth needs both "
                    "classes.")
  image_size = split.train.image_size
  images = np.concatenate([split.train.images, split.val.images])
  labels = np.concatenate([split.train.labels, split.val.labels])
  n_t, n_v = split.train.num_examples, split.val.num_examples
  train_rows = np.arange(n_t)
  val_rows = np.arange(n_t, n_t + n_v)

  # Model m = (source i, seed s); i == num_sources is the no-transfer net.
  pairs = [(i, s) for s in range(num_seeds) for i in range(num_sources + 1)]
  num_models = len(pairs)
  auc = np.zeros((num_sources + 1, num_seeds))
  epochs = np.zeros((num_sources + 1, num_seeds), np.int32)
  budget_auc = {b: np.zeros((num_sources + 1, num_seeds)) for b in cfg.budgets
                if b <= cfg.max_epochs}
  test_logits = np.zeros((num_sources + 1, num_seeds, split.test.num_examples,
                          cfg.max_classes), np.float32)
  sec = {m: np.zeros((num_sources + 1, num_seeds)) for m in extra}
  score = lambda logits, m=metric: gt_metrics.score_logits(
      split.test.labels, logits, m, num_classes)
  t0 = time.time()
  for start in range(0, num_models, model_chunk):
    chunk = pairs[start:start + model_chunk]
    path = chunk_dir and os.path.join(chunk_dir, f"chunk_{start:06d}.json")
    if path and os.path.exists(path):
      stored = tio.read_json(path)
      if [tuple(p) for p in stored["pairs"]] != chunk:
        raise CheckpointError(f"{path} holds other (source, seed) pairs; it was made "
                              "with another zoo, seed count or model_chunk. Use a new "
                              "--workdir.")
      logits_path = path[:-len(".json")] + "_logits.npz"
      stored_logits = (tio.load_npz(logits_path)["test_logits"]
                       if os.path.exists(logits_path) else None)
      for j, (i, s) in enumerate(chunk):
        auc[i, s], epochs[i, s] = stored["auc"][j], stored["epochs"][j]
        for b in budget_auc:
          budget_auc[b][i, s] = stored["budget_auc"][str(b)][j]
        for m in sec:
          sec[m][i, s] = stored.get("secondary", {}).get(m, [np.nan] * len(chunk))[j]
        test_logits[i, s] = np.nan if stored_logits is None else stored_logits[j]
      logging.info("fine-tuned %d/%d models: restored from %s",
                   start + len(chunk), num_models, path)
      continue
    # Pad the last chunk with copies so every chunk has one compiled shape.
    padded = chunk + [chunk[-1]] * (min(model_chunk, num_models) - len(chunk))
    keys = jnp.stack([jax.random.fold_in(jax.random.fold_in(root_key, s), i)
                      for i, s in padded])
    init_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys)
    order_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    fresh = init_params_stack(cfg.arch, cfg.max_classes, init_keys, image_size,
                              cfg.conv_impl)
    src_index = np.array([min(i, num_sources - 1) for i, _ in padded])
    is_source = np.array([i < num_sources for i, _ in padded])
    src = jax.tree.map(lambda a: jnp.asarray(np.asarray(a)[src_index]), source_params)
    moved = transplant(src, fresh, num_transferred)
    # The no-transfer models keep their own random conv layers.
    sel = jnp.asarray(is_source)
    init = jax.tree.map(
        lambda a, b: jnp.where(sel.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
        moved, fresh)
    m = len(padded)
    train_idx, train_len = pad_index_sets([train_rows] * m)
    val_idx, val_len = pad_index_sets([val_rows] * m)
    names = [f"source {i}, seed {s}" if i < num_sources else f"no-transfer, seed {s}"
             for i, s in padded]
    res = fit_models(init, images, labels, train_idx, train_len, val_idx, val_len,
                     np.full(m, split.train.num_classes), order_keys, cfg,
                     eval_images=split.test.images, names=names)
    for j, (i, s) in enumerate(chunk):
      auc[i, s] = score(res.eval_logits[j])
      for m in extra:
        sec[m][i, s] = score(res.eval_logits[j], m)
      epochs[i, s] = res.epochs_run[j]
      test_logits[i, s] = res.eval_logits[j]
      for b in budget_auc:
        budget_auc[b][i, s] = score(res.budget_logits[b][j])
    if path and jax.process_index() == 0:
      tio.write_json(path, {
          "pairs": chunk, "auc": [auc[i, s] for i, s in chunk],
          "epochs": [epochs[i, s] for i, s in chunk],
          "budget_auc": {str(b): [v[i, s] for i, s in chunk]
                         for b, v in budget_auc.items()},
          "secondary": {m: [v[i, s] for i, s in chunk] for m, v in sec.items()}})
      tio.save_npz(path[:-len(".json")] + "_logits.npz",
                   test_logits=np.stack([test_logits[i, s] for i, s in chunk]))
    done = start + len(chunk)
    rate = done / max(time.time() - t0, 1e-9)
    logging.info("fine-tuned %d/%d models (%.1f models/s, ETA %.0fs)", done,
                 num_models, rate, (num_models - done) / rate)
  return FinetuneOutcome(
      auc=auc[:num_sources], no_transfer=auc[num_sources],
      epochs=epochs[:num_sources], no_transfer_epochs=epochs[num_sources],
      budget_auc={b: v[:num_sources] for b, v in budget_auc.items()},
      budget_no_transfer={b: v[num_sources] for b, v in budget_auc.items()},
      test_logits=test_logits[:num_sources],
      metric=metric, secondary={m: v[:num_sources] for m, v in sec.items()},
      secondary_no_transfer={m: v[num_sources] for m, v in sec.items()})
