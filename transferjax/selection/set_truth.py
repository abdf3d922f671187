"""Ground truth of a SET of sources on a target.

Two ways to use k sources together, both measured on ``D_e`` by the study's
ground-truth metric (``transfer.gt_metrics``): test AUC for a binary target,
top-1 accuracy (or mean per-class accuracy) for a multi-class one:

* ``ensemble_score``: the ensemble of the k fine-tuned sources (each fine-tuned
  alone, as for the single-source ground truth), logits averaged (multi-class:
  the prediction is the argmax of the averaged logits). Every subset
  comes from the same q fine-tuned models, so an exhaustive search over all
  subsets costs only AUCs.
* ``concat_head_score``: one network on the concatenated transferred features
  ``[F_1, ..., F_k]`` (each source's frozen layers up to ``fc``, reduced by the
  caller, e.g. PCA to 32 dimensions per source) with a fresh linear softmax
  head over the target's classes, trained on ``D_t`` with early stopping on
  ``D_v``, vmapped over
  (subset, seed) in chunks. Frozen features make every subset a small convex
  fit, which is what makes the exhaustive oracle affordable on a CPU.
"""
from __future__ import annotations

import functools
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import stats as sps

from transferjax.errors import ConfigError
from transferjax.transfer import gt_metrics


def auc_rows(labels: np.ndarray, margins: np.ndarray) -> np.ndarray:
  """Binary AUC of every row of ``margins [..., E]`` (class 1 positive), ties
  counted half (the Mann-Whitney statistic; equals sklearn's roc_auc_score)."""
  labels = np.asarray(labels)
  if set(np.unique(labels).tolist()) != {0, 1}:
    raise ConfigError("The set ground truth needs a binary target with both "
                      f"classes in D_e; got labels {np.unique(labels).tolist()}.")
  ranks = sps.rankdata(np.asarray(margins, np.float64), axis=-1)
  pos = labels == 1
  n_pos, n_neg = int(pos.sum()), int((~pos).sum())
  return (ranks[..., pos].sum(-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def score_rows(labels: np.ndarray, logits: np.ndarray, metric: str,
               num_classes: int) -> np.ndarray:
  """The ground-truth score of every row of ``logits [..., E, C]``.

  ``metric``: ``"auc"`` (binary; margin of class 1 over class 0),
  ``"accuracy"`` (top-1) or ``"balanced_accuracy"`` (mean per-class accuracy);
  the same scores as ``gt_metrics.score_logits``, for many nets at once.
  Columns ``>= num_classes`` (unused head slots) are ignored.
  """
  labels = np.asarray(labels)
  logits = np.asarray(logits, np.float64)[..., :num_classes]
  if metric == "auc":
    return auc_rows(labels, logits[..., 1] - logits[..., 0])
  if metric not in ("accuracy", "balanced_accuracy"):
    raise ConfigError(f"Unknown ground-truth metric {metric!r}; choose one of "
                      f"{gt_metrics.GT_METRICS[1:]}.")
  hit = np.argmax(logits, axis=-1) == labels                        # [..., E]
  if metric == "accuracy":
    return hit.mean(-1)
  return np.mean([hit[..., labels == c].mean(-1) for c in np.unique(labels)], axis=0)


def ensemble_score(test_logits: np.ndarray, labels: np.ndarray,
                   subsets: np.ndarray, *, metric: str = "auc",
                   num_classes: int = 2, chunk: int = 256) -> np.ndarray:
  """Score of every subset's logit-averaged ensemble, per seed.

  Args:
    test_logits: ``[q, S, E, C]`` test logits of each fine-tuned source and seed.
    labels: ``[E]`` test labels in ``0..num_classes-1``.
    subsets: ``[m, k]`` source indices.
    metric: ``"auc"`` (binary), ``"accuracy"`` or ``"balanced_accuracy"``;
      a multi-class ensemble predicts the argmax of the averaged logits.
    num_classes: the target's class count.

  Returns:
    ``[m, S]`` score (seed s ensembles the seed-s fine-tune of each member).
  """
  logits = np.asarray(test_logits, np.float64)[..., :num_classes]  # [q, S, E, C]
  out = []
  for start in range(0, len(subsets), chunk):
    sub = np.asarray(subsets[start:start + chunk])
    out.append(score_rows(labels, logits[sub].mean(axis=1), metric, num_classes))
  return np.concatenate(out)


def ensemble_auc(test_logits: np.ndarray, labels: np.ndarray,
                 subsets: np.ndarray, chunk: int = 256) -> np.ndarray:
  """``ensemble_score`` with the AUC of a binary target: ``[m, S]``."""
  return ensemble_score(test_logits, labels, subsets, metric="auc", chunk=chunk)


def _head_one(x_tr, y_tr, x_va, y_va, x_te, key, *, steps, lr, num_classes):
  """Fresh linear softmax head on fixed features; returns test logits
  ``[E, num_classes]`` at the step of lowest validation loss (full-batch Adam
  from a small random init)."""
  d = x_tr.shape[1]
  params = {"w": jax.random.normal(key, (d, num_classes)) * (0.01 / jnp.sqrt(d)),
            "b": jnp.zeros((num_classes,))}
  tx = optax.adam(lr)
  loss = lambda p, x, y: optax.softmax_cross_entropy_with_integer_labels(
      x @ p["w"] + p["b"], y).mean()

  def step(carry, _):
    p, opt, best, best_loss = carry
    g = jax.grad(loss)(p, x_tr, y_tr)
    upd, opt = tx.update(g, opt, p)
    p = optax.apply_updates(p, upd)
    v = loss(p, x_va, y_va)
    better = v < best_loss - 1e-7
    best = jax.tree.map(lambda a, b: jnp.where(better, a, b), p, best)
    return (p, opt, best, jnp.where(better, v, best_loss)), None

  init = (params, tx.init(params), params, loss(params, x_va, y_va))
  (_, _, best, _), _ = jax.lax.scan(step, init, None, length=steps)
  return x_te @ best["w"] + best["b"]


@functools.partial(jax.jit, static_argnames=("steps", "lr", "n_tr", "n_va",
                                             "num_classes"))
def _heads(feats, labels, subsets, keys, *, steps, lr, n_tr, n_va, num_classes):
  """``[M, E, num_classes]`` test logits for M (subset, key) models.

  feats ``[q, N, d]`` with rows ordered D_t (n_tr), D_v (n_va), D_e (rest);
  subsets ``[M, k]``; keys ``[M]``.
  """
  def one(sub, key):
    x = jnp.moveaxis(feats[sub], 0, 1).reshape(feats.shape[1], -1)  # [N, k*d]
    mu = x[:n_tr].mean(0)
    sd = x[:n_tr].std(0)
    x = (x - mu) / jnp.where(sd > 0, sd, 1.0)
    return _head_one(x[:n_tr], labels[:n_tr], x[n_tr:n_tr + n_va],
                     labels[n_tr:n_tr + n_va], x[n_tr + n_va:], key,
                     steps=steps, lr=lr, num_classes=num_classes)
  return jax.vmap(one)(subsets, keys)


def concat_head_auc(features: np.ndarray, labels: np.ndarray, n_train: int,
                    n_val: int, subsets: np.ndarray, **kw) -> np.ndarray:
  """``concat_head_score`` with the AUC of a binary target: ``[m, num_seeds]``."""
  return concat_head_score(features, labels, n_train, n_val, subsets, metric="auc",
                           num_classes=2, **kw)


def concat_head_score(features: np.ndarray, labels: np.ndarray, n_train: int,
                      n_val: int, subsets: np.ndarray, *, num_seeds: int,
                      key: jax.Array, steps: int = 200, lr: float = 1e-2,
                      metric: str = "auc", num_classes: int = 2,
                      chunk: int | None = None) -> np.ndarray:
  """Test score of a fresh linear softmax head on each subset's concatenated
  features.

  Args:
    features: ``[q, N, d]`` frozen transferred features of every source on
      ``D_t`` (first ``n_train`` rows), ``D_v`` (next ``n_val``), ``D_e`` (rest).
    labels: ``[N]`` labels in ``0..num_classes-1``, same row order.
    subsets: ``[m, k]`` source indices.
    num_seeds: head initializations per subset.
    key: PRNG key; model (subset r, seed s) uses ``fold_in(fold_in(key, s), r)``
      where r indexes ``subsets`` as given.
    steps, lr: full-batch Adam steps and step size.
    metric, num_classes: the ground truth (``score_rows``) and the head's
      output size.
    chunk: models per compiled call; None: as many as fit ~150M gathered
      floats (at most 1024). Each model is tiny, so on CPU the time goes to
      per-operation overhead and large chunks amortize it.

  Returns:
    ``[m, num_seeds]`` test score.
  """
  feats = jnp.asarray(features, jnp.float32)
  labels = np.asarray(labels)
  lab = jnp.asarray(labels, jnp.int32)
  subsets = np.asarray(subsets, np.int32)
  m = len(subsets)
  if chunk is None:
    per_model = feats.shape[1] * subsets.shape[1] * feats.shape[2]
    chunk = int(max(16, min(1024, 150_000_000 // max(per_model, 1))))
  pairs = [(r, s) for r in range(m) for s in range(num_seeds)]
  out = np.zeros((m, num_seeds))
  t0 = time.time()
  for start in range(0, len(pairs), chunk):
    part = pairs[start:start + chunk]
    padded = part + [part[-1]] * (min(chunk, len(pairs)) - len(part))
    subs = jnp.asarray(subsets[[r for r, _ in padded]])
    keys = jnp.stack([jax.random.fold_in(jax.random.fold_in(key, s), r)
                      for r, s in padded])
    logits = np.asarray(_heads(feats, lab, subs, keys, steps=int(steps),
                               lr=float(lr), n_tr=int(n_train), n_va=int(n_val),
                               num_classes=int(num_classes)))
    aucs = score_rows(labels[n_train + n_val:], logits, metric, num_classes)
    for j, (r, s) in enumerate(part):
      out[r, s] = aucs[j]
    done = start + len(part)
    if done == len(pairs) or (start // chunk) % 4 == 0:
      rate = done / max(time.time() - t0, 1e-9)
      logging.info("concat heads: %d/%d models (ETA %.0fs)", done, len(pairs),
                   (len(pairs) - done) / rate)
  return out
