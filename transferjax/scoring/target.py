"""The target net ``N_t`` and the scoring set ``(X, Y, T)`` the CMI is estimated on.

Two protocols:

* ``"paper"`` (Afridi et al.): ``N_t`` is trained on ``D_t`` with early stopping
  on ``D_v``; the scoring set is ``D_v`` and ``T = N_t(X_v)``. On small targets
  ``D_v`` is a handful of images (8 at 5% of the offline MNIST pair).
* ``"crossfit"`` (default): all labeled data ``D_a = D_t + D_v`` is split into K
  stratified folds. Fold net ``j`` trains on K-2 folds, early-stops on fold
  ``j+1`` and scores fold ``j``, so every image of ``D_a`` gets an out-of-fold
  ``T`` from a net that never saw it (neither trained nor early-stopped on it).
  The K fold nets train at once in one vmapped ``fit_models`` call.

``T`` is the target net's logits (for two classes the logit margin
``logit_1 - logit_0``, one dimension). Logits, not probabilities: softmax
saturates in float32 and creates exact ties, which bias k-NN estimators upward
(docs/notes/estimators.md); the margin carries all the information of a
binary softmax.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from transferjax.data.splits import stratified_folds
from transferjax.data.tasks import TargetSplit
from transferjax.errors import ConfigError
from transferjax.transfer.fit import FitConfig, fit_models, pad_index_sets
from transferjax.transfer.finetune import init_params_stack

PROTOCOLS = ("crossfit", "paper")


@dataclasses.dataclass(frozen=True)
class ScoringSet:
  """What every ranking method sees.

  Attributes:
    images: ``[n, h, w, 1]`` the scoring images.
    labels: ``[n]`` their target labels ``Y``.
    t: ``[n, d_t]`` target-net scores ``T`` (out-of-fold under cross-fitting).
    train_images, train_labels: the rows a probe may train on (``D_t``; under
      cross-fitting the same as the scoring rows, used with out-of-fold folds).
    folds: ``[n]`` fold id of each scoring row (all 0 under the paper protocol).
    protocol: ``"crossfit"`` or ``"paper"``.
  """
  images: np.ndarray
  labels: np.ndarray
  t: np.ndarray
  train_images: np.ndarray
  train_labels: np.ndarray
  folds: np.ndarray
  protocol: str


def logits_to_t(logits: np.ndarray, num_classes: int) -> np.ndarray:
  """``[n, C]`` logits -> ``[n, d_t]`` target scores (margin for 2 classes).

  With C > 2 the logits are centred per row (softmax is invariant to a shift),
  giving C dimensions of which C-1 are free.
  """
  logits = np.asarray(logits, np.float64)[:, :num_classes]
  if num_classes == 2:
    return (logits[:, 1] - logits[:, 0])[:, None].astype(np.float32)
  return (logits - logits.mean(axis=1, keepdims=True)).astype(np.float32)


def build_scoring_set(split: TargetSplit, *, protocol: str = "crossfit",
                      folds: int = 5, cfg: FitConfig, key: jax.Array,
                      num_target_seeds: int = 1) -> ScoringSet:
  """Train the target net(s) and return the scoring set.

  Args:
    split: the target split.
    protocol: ``"crossfit"`` (default) or ``"paper"``.
    folds: K for cross-fitting (>= 3: train, early-stop and scored folds).
    cfg: how ``N_t`` is trained (same trainer as fine-tuning).
    key: PRNG key.
    num_target_seeds: target nets per fold whose logits are averaged (a steadier
      ``T``).

  Returns:
    A ``ScoringSet``.
  """
  if protocol not in PROTOCOLS:
    raise ConfigError(f"Unknown protocol {protocol!r}; choose one of {PROTOCOLS}.")
  num_classes = split.train.num_classes
  image_size = split.train.image_size
  if protocol == "paper":
    images = np.concatenate([split.train.images, split.val.images])
    labels = np.concatenate([split.train.labels, split.val.labels])
    n_t, n_v = split.train.num_examples, split.val.num_examples
    train_sets = [np.arange(n_t)] * num_target_seeds
    val_sets = [np.arange(n_t, n_t + n_v)] * num_target_seeds
    score_rows = [np.arange(n_t, n_t + n_v)] * num_target_seeds
    fold_of = np.zeros(n_v, np.int32)
  else:
    if folds < 3:
      raise ConfigError(f"Cross-fitting needs folds >= 3 (train, early-stopping "
                        f"and scored folds), got {folds}.")
    labeled = split.labeled
    images, labels = labeled.images, labeled.labels
    fold_of = stratified_folds(labels, folds, seed=int(split.seed))
    train_sets, val_sets, score_rows = [], [], []
    for _ in range(num_target_seeds):
      for j in range(folds):
        stop = (j + 1) % folds
        train_sets.append(np.flatnonzero((fold_of != j) & (fold_of != stop)))
        val_sets.append(np.flatnonzero(fold_of == stop))
        score_rows.append(np.flatnonzero(fold_of == j))
  m = len(train_sets)
  keys = jax.random.split(key, m)
  init = init_params_stack(cfg.arch, cfg.max_classes,
                           jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys),
                           image_size, cfg.conv_impl)
  train_idx, train_len = pad_index_sets(train_sets)
  val_idx, val_len = pad_index_sets(val_sets)
  fit_cfg = dataclasses.replace(cfg, budgets=())
  res = fit_models(init, images, labels, train_idx, train_len, val_idx, val_len,
                   np.full(m, num_classes),
                   jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys), fit_cfg,
                   eval_images=images, names=[f"target net {i}" for i in range(m)])
  if protocol == "paper":
    rows = score_rows[0]
    logits = res.eval_logits[:, rows].mean(axis=0)
    return ScoringSet(images[rows], labels[rows], logits_to_t(logits, num_classes),
                      split.train.images, split.train.labels, fold_of, protocol)
  logits = np.zeros((images.shape[0], res.eval_logits.shape[-1]))
  for i, rows in enumerate(score_rows):
    logits[rows] += res.eval_logits[i, rows] / num_target_seeds
  return ScoringSet(images, labels, logits_to_t(logits, num_classes),
                    images, labels, fold_of, protocol)
