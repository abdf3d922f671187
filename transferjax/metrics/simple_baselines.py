"""Baselines every ranking method must beat (docs/notes/metrics.md).

* ``knn_accuracy``: k-NN accuracy of source features, train -> validation
  (Sorkhei et al. 2025 find it beats 23 published metrics). Pure JAX.
* ``linear_probe``: a logistic-regression head on frozen source features
  (sklearn; not jittable).
* ``loo_prior``: dataset-agnostic prior, each source's mean ground-truth AUC on
  the *other* targets (beats every published metric on mean tau_w on both
  standard benchmark tables).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from transferjax.errors import EstimatorError
from transferjax.metrics import _common


def knn_accuracy_core(train_features: jax.Array, train_labels: jax.Array,
                      val_features: jax.Array, val_labels: jax.Array, *,
                      num_classes: int, k: int = 5) -> jax.Array:
  """k-NN validation accuracy for one source; pure and jittable."""
  a = _common.as_float(train_features)
  b = _common.as_float(val_features)
  # Squared Euclidean distances [n_v, n_t], brute force.
  d2 = jnp.sum(b * b, 1)[:, None] + jnp.sum(a * a, 1)[None, :] - 2.0 * b @ a.T
  _, idx = jax.lax.top_k(-d2, k)                                 # [n_v, k]
  votes = jax.nn.one_hot(train_labels[idx], num_classes, dtype=a.dtype).sum(1)
  pred = jnp.argmax(votes, axis=1)   # ties -> smallest class id (as sklearn)
  return jnp.mean((pred == val_labels).astype(a.dtype))


_knn_jit = jax.jit(knn_accuracy_core, static_argnames=("num_classes", "k"))


def check_train_val(train_features, train_labels, val_features, val_labels, name, *,
                    stacked=False, k=None):
  """Checks a train/validation pair; returns arrays and the class count."""
  tf, ty, _ = _common.check_features(train_features, train_labels, name,
                                     stacked=stacked)
  vf = np.asarray(val_features)
  if vf.ndim != tf.ndim:
    raise EstimatorError(f"{name}: val_features must have the same rank as "
                         f"train_features ({tf.ndim}), got shape {vf.shape}.")
  if vf.shape[-1] != tf.shape[-1] or (stacked and vf.shape[0] != tf.shape[0]):
    raise EstimatorError(
        f"{name}: train features {tf.shape} and val features {vf.shape} differ "
        f"in the source or feature axis; extract both with the same networks.")
  _common.check_finite(vf, name, "val_features")
  vy, _ = _common.check_labels(val_labels, vf.shape[-2], name, num_classes=int(
      max(np.max(ty), np.max(val_labels)) + 1), what="val_features")
  c = int(max(ty.max(), vy.max())) + 1
  if k is not None and not 1 <= k <= tf.shape[-2]:
    raise EstimatorError(f"{name}: k={k} must be in 1..n_train={tf.shape[-2]}.")
  return tf, ty, vf.astype(np.float64 if not np.issubdtype(vf.dtype, np.floating)
                           else vf.dtype), vy, c


def knn_accuracy(train_features: Any, train_labels: Any, val_features: Any,
                 val_labels: Any, *, k: int = 5, num_classes: int | None = None):
  """Accuracy of a k-nearest-neighbour classifier on source features.

  Euclidean distance, uniform votes, ties broken towards the smaller class id
  (sklearn's ``KNeighborsClassifier`` rule). Higher is better.

  Args:
    train_features: `[n_t, d]` source features of the target training images.
    train_labels: `[n_t]` their labels.
    val_features: `[n_v, d]` source features of the validation images.
    val_labels: `[n_v]` their labels.
    k: number of neighbours.
    num_classes: C; required only under jit/vmap.

  Returns:
    Validation accuracy in [0, 1] (NumPy float64 when called eagerly).
  """
  if _common.is_traced(train_features, train_labels, val_features, val_labels):
    return knn_accuracy_core(
        train_features, train_labels, val_features, val_labels, k=k,
        num_classes=_common.require_num_classes(num_classes, "knn_accuracy"))
  tf, ty, vf, vy, c = check_train_val(train_features, train_labels, val_features,
                                      val_labels, "knn_accuracy", k=k)
  return _common.run_eager(_knn_jit, tf, ty, vf, vy, num_classes=c, k=k)


def linear_probe(train_features: Any, train_labels: Any, val_features: Any,
                 val_labels: Any, *, metric: str = "accuracy", c_reg: float = 1.0,
                 max_iter: int = 1000) -> np.float64:
  """Validation score of a logistic-regression head on frozen features.

  Features are standardised with the training statistics, then
  ``sklearn.linear_model.LogisticRegression(C=c_reg)`` (lbfgs, multinomial)
  is fitted. Not jittable (sklearn); :func:`score_sources` loops over sources.

  Args:
    train_features: `[n_t, d]` source features of the target training images.
    train_labels: `[n_t]` their labels.
    val_features: `[n_v, d]` validation features.
    val_labels: `[n_v]` validation labels.
    metric: "accuracy" (default) or "auc" (binary: ROC AUC of the class-1
      probability; multi-class: one-vs-rest macro AUC, which needs every class
      in the validation labels).
    c_reg: inverse L2 strength.
    max_iter: lbfgs iterations.

  Returns:
    The validation accuracy or AUC; higher is better.
  """
  from sklearn.linear_model import LogisticRegression
  from sklearn.metrics import roc_auc_score
  from sklearn.preprocessing import StandardScaler

  if metric not in ("accuracy", "auc"):
    raise EstimatorError(f"linear_probe: metric must be 'accuracy' or 'auc', got "
                         f"{metric!r}.")
  tf, ty, vf, vy, c = check_train_val(train_features, train_labels, val_features,
                                      val_labels, "linear_probe")
  scaler = StandardScaler().fit(tf.astype(np.float64))
  clf = LogisticRegression(C=c_reg, max_iter=max_iter)
  clf.fit(scaler.transform(tf.astype(np.float64)), ty)
  xv = scaler.transform(vf.astype(np.float64))
  if metric == "accuracy":
    return np.float64(np.mean(clf.predict(xv) == vy))
  if np.unique(vy).size < 2:
    raise EstimatorError("linear_probe: AUC needs both classes in val_labels.")
  proba = clf.predict_proba(xv)
  if c == 2:
    return np.float64(roc_auc_score(vy, proba[:, 1]))
  if np.unique(vy).size != c:
    raise EstimatorError("linear_probe: multi-class AUC needs every class in "
                         "val_labels; use metric='accuracy'.")
  return np.float64(roc_auc_score(vy, proba, multi_class="ovr"))


def loo_prior(auc_table: Any, target_index: int) -> np.ndarray:
  """Leave-one-target-out prior: each source's mean AUC on the other targets.

  Args:
    auc_table: `[num_targets, q]` ground-truth fine-tune AUC (or accuracy) of
      every source on every target; NaN marks a missing entry and is skipped.
    target_index: the target being ranked; its own row is left out.

  Returns:
    `[q]` prior score per source (NaN where a source has no other target).
    Higher is better.
  """
  t = np.asarray(auc_table, dtype=np.float64)
  if t.ndim != 2:
    raise EstimatorError(f"loo_prior: auc_table must be [num_targets, q], got "
                         f"shape {t.shape}.")
  if t.shape[0] < 2:
    raise EstimatorError("loo_prior: needs at least 2 targets (one to leave out "
                         "and one to average).")
  if not -t.shape[0] <= target_index < t.shape[0]:
    raise EstimatorError(f"loo_prior: target_index={target_index} out of range "
                         f"for {t.shape[0]} targets.")
  if np.isinf(t).any():
    raise EstimatorError("loo_prior: auc_table contains inf.")
  rest = np.delete(t, target_index % t.shape[0], axis=0)
  with np.errstate(invalid="ignore"):
    count = np.sum(~np.isnan(rest), 0)
    total = np.nansum(rest, 0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)
