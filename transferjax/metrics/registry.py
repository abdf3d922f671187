"""One interface over all metrics: ``METRICS`` and ``score_sources``.

``score_sources(name, inputs, labels)`` maps zoo outputs stacked over q sources
to one score per source. Jittable metrics run as one jitted ``lax.map`` (a
vmap over chunks of ``batch_size`` sources, which bounds memory) inside
``jax.enable_x64(True)``; the sklearn-based linear probe loops in Python.
Source i of a keyed metric uses ``jax.random.fold_in(key, i)``, so its score does
not depend on q or on the chunk size.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from transferjax.errors import ConfigError, EstimatorError
from transferjax.metrics import _common
from transferjax.metrics import simple_baselines as baselines
from transferjax.metrics import hscore
from transferjax.metrics import pactran
from transferjax.metrics import source_labels as leep_lib
# Imported by name: the package rebinds each of these module names to the
# metric function of the same name.
from transferjax.metrics.gbc import GAUSSIAN_TYPES, gbc, gbc_core
from transferjax.metrics.logme import logme, logme_core
from transferjax.metrics.sfda import sfda, sfda_core
from transferjax.metrics.transrate import transrate, transrate_core

INPUT_KINDS = ("features", "source_probs", "source_predictions", "train_val_features")


@dataclasses.dataclass(frozen=True)
class MetricSpec:
  """How to call one metric.

  Attributes:
    name: registry key.
    fn: the public single-source function.
    input: what it scores: "features" `[q, n, d]`, "source_probs"
      `[q, n, C_s]`, "source_predictions" `[q, n]` ints, or
      "train_val_features" (a pair of `[q, n_t, d]`, `[q, n_v, d]` stacks with a
      pair of label vectors).
    core: the pure per-source function ``core(x, labels[, key], *,
      num_classes, **options)`` (None when not jittable).
    needs_key: whether it takes a PRNG key.
    reference: the paper.
  """
  name: str
  fn: Callable[..., Any]
  input: str
  core: Callable[..., Any] | None
  needs_key: bool = False
  reference: str = ""

  @property
  def jittable(self) -> bool:
    return self.core is not None


METRICS: dict[str, MetricSpec] = {s.name: s for s in [
    MetricSpec("leep", leep_lib.leep, "source_probs", leep_lib.leep_core,
               reference="Nguyen et al., ICML 2020"),
    MetricSpec("nce", leep_lib.nce, "source_predictions", leep_lib.nce_core,
               reference="Tran et al., ICCV 2019"),
    MetricSpec("h_score", hscore.h_score, "features", hscore.h_score_core,
               reference="Bao et al., ICIP 2019"),
    MetricSpec("shrinkage_h_score", hscore.shrinkage_h_score, "features",
               hscore.shrinkage_h_score_core,
               reference="Ibrahim et al., arXiv 2110.06893"),
    MetricSpec("logme", logme, "features", logme_core,
               reference="You et al., ICML 2021 / JMLR 2022"),
    MetricSpec("nleep", leep_lib.nleep, "features", leep_lib.nleep_core,
               needs_key=True, reference="Li et al., CVPR 2021"),
    MetricSpec("gbc", gbc, "features", gbc_core,
               reference="Pandy et al., CVPR 2022"),
    MetricSpec("transrate", transrate, "features",
               transrate_core, reference="Huang et al., ICML 2022"),
    MetricSpec("sfda", sfda, "features", sfda_core,
               reference="Shao et al., ECCV 2022"),
    MetricSpec("pactran_gauss", pactran.pactran_gauss, "features",
               pactran.pactran_gauss_core,
               reference="Ding et al., ECCV 2022 (negated: paper is lower-better)"),
    MetricSpec("knn_accuracy", baselines.knn_accuracy, "train_val_features",
               baselines.knn_accuracy_core, reference="Sorkhei et al. 2025 (baseline)"),
    MetricSpec("linear_probe", baselines.linear_probe, "train_val_features", None,
               reference="baseline"),
]}


@functools.partial(jax.jit, static_argnames=("core", "num_classes", "batch_size",
                                              "options", "keyed"))
def _map_sources(xs, labels, keys, *, core, num_classes, batch_size, options, keyed):
  """Scores a stack of sources: one jit, lax.map over chunks of vmapped sources."""
  kw = dict(options)

  def one(args):
    if keyed:
      x, k = args
      return core(x, labels, k, num_classes=num_classes, **kw)
    return core(args, labels, num_classes=num_classes, **kw)

  return jax.lax.map(one, (xs, keys) if keyed else xs, batch_size=batch_size)


@functools.partial(jax.jit, static_argnames=("core", "num_classes", "batch_size",
                                              "options"))
def _map_train_val(train, val, train_labels, val_labels, *, core, num_classes,
                   batch_size, options):
  kw = dict(options)
  return jax.lax.map(
      lambda tv: core(tv[0], train_labels, tv[1], val_labels, num_classes=num_classes,
                      **kw), (train, val), batch_size=batch_size)


def source_keys(key: jax.Array, q: int) -> jax.Array:
  """Per-source keys ``fold_in(key, i)``, i = 0..q-1."""
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(q))


def score_sources(name: str, inputs: Any, labels: Any, *, key: jax.Array | None = None,
                  batch_size: int = 16, **options: Any) -> np.ndarray:
  """One score per source for a stack of zoo outputs.

  Args:
    name: a key of ``METRICS``.
    inputs: by ``METRICS[name].input``: features `[q, n, d]`, source_probs
      `[q, n, C_s]`, source_predictions `[q, n]`, or for
      "train_val_features" a pair ``(train [q, n_t, d], val [q, n_v, d])``.
    labels: target labels `[n]`; for "train_val_features" a pair
      ``(train_labels [n_t], val_labels [n_v])``.
    key: PRNG key, required by keyed metrics (nleep); source i uses
      ``fold_in(key, i)``.
    batch_size: sources vmapped together inside the ``lax.map`` (memory bound).
    **options: static keyword options of the metric (e.g. gaussian_type="spherical",
      eps=1e-4, k=5, components_per_class=5).

  Returns:
    float64 `[q]`, higher is better for every metric.
  """
  if name not in METRICS:
    raise ConfigError(f"unknown metric {name!r}; choose one of {sorted(METRICS)}.")
  spec = METRICS[name]
  if spec.needs_key and key is None:
    raise EstimatorError(f"{name}: needs a PRNG key (key=jax.random.key(0)).")
  if batch_size < 1:
    raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
  params = inspect.signature(spec.core or spec.fn).parameters
  allowed = {k for k, p in params.items() if p.kind == p.KEYWORD_ONLY} - {"num_classes"}
  unknown = set(options) - allowed
  if unknown:
    raise ConfigError(f"{name}: unknown options {sorted(unknown)}; it accepts "
                      f"{sorted(allowed)}.")

  if spec.input == "train_val_features":
    if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2
            and isinstance(labels, (tuple, list)) and len(labels) == 2):
      raise EstimatorError(
          f"{name}: pass inputs=(train_features [q, n_t, d], val_features "
          f"[q, n_v, d]) and labels=(train_labels, val_labels).")
    tf, ty, vf, vy, c = baselines.check_train_val(
        inputs[0], labels[0], inputs[1], labels[1], name, stacked=True,
        k=options.get("k", 5) if name == "knn_accuracy" else None)
    if not spec.jittable:
      return np.array([spec.fn(tf[i], ty, vf[i], vy, **options)
                       for i in range(tf.shape[0])], dtype=np.float64)
    q = tf.shape[0]
    bs = min(batch_size, q)
    pad = (-q) % bs  # no remainder batch (see the note in the features path)
    tf_p = np.concatenate([tf, np.repeat(tf[-1:], pad, axis=0)]) if pad else tf
    vf_p = np.concatenate([vf, np.repeat(vf[-1:], pad, axis=0)]) if pad else vf
    with jax.enable_x64(True):
      out = _map_train_val(jnp.asarray(tf_p), jnp.asarray(vf_p), jnp.asarray(ty),
                           jnp.asarray(vy), core=spec.core, num_classes=c,
                           batch_size=bs, options=tuple(sorted(options.items())))
      return np.asarray(out, dtype=np.float64)[:q]

  if spec.input == "features":
    xs, y, c = _common.check_features(inputs, labels, name, stacked=True)
    if name == "nleep":
      leep_lib.check_nleep_size(xs.shape[1], c, options.get("components_per_class", 5))
    if name in ("h_score", "shrinkage_h_score") and xs.shape[1] < 3:
      raise EstimatorError(f"{name}: needs at least 3 images, got n={xs.shape[1]}.")
    if name == "gbc" and options.get("gaussian_type", "diagonal") not in GAUSSIAN_TYPES:
      raise EstimatorError(f"gbc: gaussian_type must be one of {GAUSSIAN_TYPES}.")
    if name == "pactran_gauss" and float(options.get("lda_factor", 1.0)) not in (10.0, 1.0, 0.1):
      raise EstimatorError("pactran_gauss: lda_factor must be one of 0.1, 1, 10.")
  elif spec.input == "source_probs":
    xs, y, c = _common.check_probs(inputs, labels, name, stacked=True)
  else:
    xs, y, c, cs = _common.check_predictions(inputs, labels, name, stacked=True)
    options = {"num_source_classes": cs, **options}

  q = xs.shape[0]
  bs = min(batch_size, q)
  # Pad the sources to a multiple of the batch: lax.map with a remainder batch
  # (e.g. 20 sources in batches of 16) compiles a second, differently vmapped
  # copy of the body, and on jaxlib 0.10.2 XLA:CPU that executable can hang
  # forever in a batched float64 eigh (reproduced; BUILD_NOTES.md).
  pad = (-q) % bs
  xs_p = np.concatenate([xs, np.repeat(xs[-1:], pad, axis=0)]) if pad else xs
  with jax.enable_x64(True):
    keys = source_keys(key, q + pad) if spec.needs_key else None
    out = _map_sources(jnp.asarray(xs_p), jnp.asarray(y), keys, core=spec.core,
                       num_classes=c, batch_size=bs,
                       options=tuple(sorted(options.items())), keyed=spec.needs_key)
    return np.asarray(out, dtype=np.float64)[:q]
