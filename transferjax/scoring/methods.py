"""Every ranking method behind one interface: ``(RankInputs, RankConfig) -> [q]``.

Higher is better for every method. The paper's CMI, its binned variant, the
unconditioned I(Y;F), the trivial priors a claim must beat (source accuracy,
number of classes), a cross-fitted linear probe, and every modern metric of
``transferjax.metrics`` are scored from the same zoo outputs, so the evaluation
treats them all alike. Each entry of ``METHODS`` declares the inputs it reads
(``Method.needs``, names of ``NEEDS``): the RBM baseline, for one, reads the
source pool (an RBM per source) and the target's images, not the zoo outputs,
so a pipeline provides those only when a chosen method needs them.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from transferjax import estimators as est
from transferjax import metrics as mt
from transferjax.errors import ConfigError, EstimatorError
from transferjax.estimators.knn import DEFAULT_JITTER
from transferjax.models import masked_logits


@dataclasses.dataclass(frozen=True)
class RankConfig:
  """How sources are scored.

  Attributes:
    method: a key of ``METHODS``.
    k: neighbours of the k-NN estimators.
    metric: ``"euclidean"`` (within F; the default: less high-dimensional bias,
      docs/notes/estimators.md, and the best ranker on our offline data,
      BUILD_NOTES.md) or ``"max"`` (the canonical Frenzel-Pompe norm).
    jitter: std of the seeded noise added after standardizing, relative to each
      column's magnitude (breaks ties; ``estimators.knn``, "Ties": 1e-6 sits at
      float32 resolution and left duplicated 200-d features at 1.05 nats > H(Y)).
    feature_dim: PCA every source's features to this common dimension first
      (None keeps the full 200-d features).
    null_correction: subtract each source's permutation-null mean (Y permuted
      within T bins), removing the part of the k-NN bias that depends on F.
    n_perm: permutations for the null.
    bins_f, bins_t: bins of the binned estimator (F reduced by PCA to 1-D).
    seed: PRNG seed for jitter, permutations and keyed metrics.
    f_scale: ``"rms"`` (default) divides the standardized F block by
      ``sqrt(d_F)`` so a distance in F is on the scale of a distance in T. Without
      it a 200-d F dominates the joint max-norm: every k-NN radius exceeds the T
      distances, all T-counts cover the whole set and the CMI collapses to the
      unconditioned I(Y;F) (measured: identical scores; BUILD_NOTES.md).
      ``"none"`` keeps plain per-column standardization.
  """
  method: str = "cmi_knn"
  k: int = 3
  metric: str = "euclidean"
  jitter: float = DEFAULT_JITTER
  feature_dim: int | None = None
  null_correction: bool = False
  n_perm: int = 10
  bins_f: int = 3
  bins_t: int = 3
  seed: int = 0
  f_scale: str = "rms"


@dataclasses.dataclass(frozen=True)
class RankInputs:
  """Zoo outputs on the scoring set.

  Attributes:
    labels: ``[n]`` target labels Y.
    t: ``[n, d_t]`` target-net scores T.
    features: ``[q, n, d]`` penultimate features of every source.
    source_logits: ``[q, n, C_max]`` source-head logits (masked per source).
    source_num_classes: ``[q]`` classes of each source task.
    folds: ``[n]`` fold id per row (cross-fitted probes train on other folds).
    source_metrics: zoo training metrics, each ``[q]`` (``train_acc``, ...).
    target_images: ``[n_a, h, w, c]`` the labeled target images (``D_a``'s
      training part), for methods that read pixels (None: not provided).
    source_pool_models: per-source models of the source pool (the RBM
      baseline's ``{"w": [q, v, h], ...}``; None: not provided).
  """
  labels: np.ndarray
  t: np.ndarray
  features: np.ndarray
  source_logits: np.ndarray
  source_num_classes: np.ndarray
  folds: np.ndarray
  source_metrics: dict
  target_images: np.ndarray | None = None
  source_pool_models: dict | None = None


# What a method may read: need name -> the ``RankInputs`` field that holds it
# (``labels`` is always there and not declared).
NEEDS: dict[str, str] = {
    "features": "features",            # penultimate source features F
    "target_net": "t",                 # target-net scores T
    "source_logits": "source_logits",  # source-head logits
    "source_classes": "source_num_classes",
    "folds": "folds",                  # cross-fitting folds of the scoring set
    "zoo_metrics": "source_metrics",   # the zoo's training metadata (priors)
    "target_images": "target_images",
    "source_pool": "source_pool_models",
}


@dataclasses.dataclass(frozen=True)
class Method:
  """One ranking method: ``score(inputs, cfg, key) -> [q]``, higher = better.

  Attributes:
    name: registry key.
    score: the scoring function.
    needs: the ``NEEDS`` it reads (tests/test_method_registry.py checks that
      it reads exactly these).
    zoo_metric: the ``source_metrics`` key read (``"zoo_metrics"`` methods).
  """
  name: str
  score: Callable[..., np.ndarray]
  needs: frozenset
  zoo_metric: str | None = None

  def __post_init__(self):
    unknown = set(self.needs) - set(NEEDS)
    if unknown:
      raise ValueError(f"{self.name}: unknown need(s) {sorted(unknown)}; "
                       f"known: {sorted(NEEDS)}.")

  def __call__(self, inp: RankInputs, cfg: "RankConfig", key) -> np.ndarray:
    return self.score(inp, cfg, key)


def _features(inp: RankInputs, cfg: RankConfig) -> np.ndarray:
  if cfg.feature_dim is None:
    return inp.features
  return np.asarray(est.reduce_dim(inp.features, int(cfg.feature_dim)))


def _knn(inp, cfg, key, *, conditional=True, return_local=False):
  t = inp.t if conditional else None
  if cfg.f_scale not in ("rms", "none"):
    raise ConfigError(f"f_scale must be 'rms' or 'none', got {cfg.f_scale!r}.")
  # f_scale="rms" (the public estimators' default too) puts F on T's scale.
  kw = dict(k=cfg.k, metric=cfg.metric, jitter=cfg.jitter, key=key,
            f_scale=cfg.f_scale)
  f = _features(inp, cfg)
  if return_local:
    # Per-sample terms [q, n] of the uncorrected estimate (for bootstraps).
    return est.cmi_knn_many(inp.labels, f, t, return_local=True, **kw)[1]
  scores = np.asarray(est.cmi_knn_many(inp.labels, f, t, **kw), np.float64)
  if cfg.null_correction:
    # Mean over permutations of Y within T bins: what the estimator gives each
    # source when F carries no information beyond T. One lax.map per permutation.
    t_for_null = inp.t if conditional else np.zeros((len(inp.labels), 1), np.float32)
    nulls = []
    for p in range(cfg.n_perm):
      pk = jax.random.fold_in(key, 1000 + p)
      y_perm = np.asarray(est.permute_within_t_bins(inp.labels, t_for_null, pk,
                                                    bins_t=cfg.bins_t))
      nulls.append(np.asarray(est.cmi_knn_many(y_perm, f, t, **kw)))
    scores = scores - np.mean(nulls, axis=0)
  return scores


def _binned(inp, cfg, key):
  return np.asarray(est.cmi_binned_many(inp.labels, inp.features, inp.t,
                                        bins_f=cfg.bins_f, bins_t=cfg.bins_t,
                                        f_reduce="pca", n_components=1, key=key),
                    np.float64)


def source_probs(inp: RankInputs) -> np.ndarray:
  """``[q, n, C_max]`` source-task softmax (padded classes get probability 0)."""
  logits = jnp.asarray(inp.source_logits)
  nc = jnp.asarray(inp.source_num_classes)[:, None, None]
  return np.asarray(jax.nn.softmax(masked_logits(logits, nc), axis=-1), np.float64)


def _cross_fitted(name: str) -> Callable:
  """A train->val metric (probe, k-NN accuracy) made out-of-fold over the folds."""

  def fn(inp, cfg, key):
    del key
    folds = np.unique(inp.folds)
    if len(folds) < 2:
      raise EstimatorError(
          f"{name} needs a train/validation split of the scoring set; use the "
          "cross-fitting protocol (--protocol=crossfit).")
    total = np.zeros(inp.features.shape[0])
    for j in folds:
      tr, va = inp.folds != j, inp.folds == j
      if len(np.unique(inp.labels[tr])) < 2:
        raise EstimatorError(f"{name}: a training fold has one class; use fewer "
                             "folds or more labeled target data.")
      total += va.sum() * mt.score_sources(
          name, (inp.features[:, tr], inp.features[:, va]),
          (inp.labels[tr], inp.labels[va]))
    return total / len(inp.labels)

  return fn


def _metric(name: str, **options) -> Callable:
  spec = mt.METRICS[name]

  def fn(inp, cfg, key):
    if spec.input == "features":
      x = inp.features
    elif spec.input == "source_probs":
      x = source_probs(inp)
    else:
      x = np.argmax(source_probs(inp), axis=-1)
    return mt.score_sources(name, x, inp.labels, key=key if spec.needs_key else None,
                            **options)

  return fn


def _zoo_metric(key_name: str) -> Callable:
  def fn(inp, cfg, key):
    del cfg, key
    if key_name not in inp.source_metrics:
      raise ConfigError(f"The zoo has no {key_name!r} metric; retrain it with "
                        "this version of transferjax.")
    return np.asarray(inp.source_metrics[key_name], np.float64)
  return fn


def _variant(fn: Callable, **changes) -> Callable:
  """``fn`` with some ``RankConfig`` fields fixed (estimator variants)."""
  return lambda inp, cfg, key: fn(inp, dataclasses.replace(cfg, **changes), key)


# The k-NN methods: the paper's estimator and its variants (compared in
# BUILD_NOTES.md) as RankConfig changes, and whether T is conditioned on. Their
# scores are means of per-sample terms (``local_terms``).
_KNN_METHODS: dict[str, tuple[dict, bool]] = {
    "cmi_knn": ({}, True),
    "cmi_knn_max": ({"metric": "max"}, True),
    "cmi_knn_unscaled": ({"f_scale": "none"}, True),
    "cmi_knn_pca16": ({"feature_dim": 16}, True),
    "cmi_knn_null": ({"null_correction": True}, True),
    "mi_knn": ({}, False),
}


def _knn_method(changes: dict, conditional: bool) -> Callable:
  return lambda inp, cfg, key: _knn(inp, dataclasses.replace(cfg, **changes), key,
                                    conditional=conditional)


def local_terms(inp: RankInputs, cfg: RankConfig) -> np.ndarray | None:
  """Per-sample terms ``[q, n]`` of a k-NN method (None for other methods).

  Their mean over the n scoring rows is the method's score before any null
  correction (same key as ``score_method``), so resampling rows bootstraps it.
  """
  if cfg.method not in _KNN_METHODS:
    return None
  changes, conditional = _KNN_METHODS[cfg.method]
  return np.asarray(_knn(inp, dataclasses.replace(cfg, **changes),
                         jax.random.key(cfg.seed), conditional=conditional,
                         return_local=True), np.float64)


def _rbm(inp, cfg, key):
  """Ammar et al.'s RBM baseline: minus each source RBM's reconstruction error
  on the target images (``baselines.rbm``)."""
  del cfg, key
  # pylint: disable-next=g-import-not-at-top
  from transferjax.baselines import rbm as rbm_lib
  if inp.source_pool_models is None or inp.target_images is None:
    raise ConfigError("Method 'rbm' needs an RBM per source trained on the source "
                      "pool and the target images; transferjax.study provides "
                      "them for a zoo (sources without their pool cannot use it).")
  return np.asarray(rbm_lib.rbm_scores(
      {k: jnp.asarray(v) for k, v in inp.source_pool_models.items()},
      inp.target_images))


def _metric_needs(name: str) -> frozenset:
  kind = mt.METRICS[name].input
  return frozenset({"features"} if kind == "features"
                   else {"source_logits", "source_classes"})


def _method(name, score, *needs, zoo_metric=None) -> tuple[str, Method]:
  return name, Method(name, score, frozenset(needs), zoo_metric)


METHODS: dict[str, Method] = dict([
    *[_method(name, _knn_method(*spec), "features",
              *(("target_net",) if spec[1] else ()))
      for name, spec in _KNN_METHODS.items()],
    _method("cmi_binned", _binned, "features", "target_net"),
    *[_method(name, _zoo_metric(key), "zoo_metrics", zoo_metric=key)
      for name, key in (("source_train_acc", "train_accuracy"),
                        ("source_holdout_acc", "holdout_accuracy"))],
    _method("source_n_classes",
            lambda inp, cfg, key: np.asarray(inp.source_num_classes, np.float64),
            "source_classes"),
    _method("source_n_images", _zoo_metric("num_train_images"), "zoo_metrics",
            zoo_metric="num_train_images"),
    _method("linear_probe", _cross_fitted("linear_probe"), "features", "folds"),
    _method("knn_accuracy", _cross_fitted("knn_accuracy"), "features", "folds"),
    *[_method(name, _metric(name), *_metric_needs(name))
      for name in ("leep", "nce", "h_score", "shrinkage_h_score", "logme",
                   "nleep", "gbc", "transrate", "sfda")],
    _method("rbm", _rbm, "source_pool", "target_images"),
])


def check_methods(methods, what: str = "ranking method") -> None:
  """ConfigError naming the unknown ``methods`` and every choice."""
  unknown = [m for m in methods if m not in METHODS]
  if unknown:
    raise ConfigError(f"Unknown {what}(s) {unknown}; choose from {sorted(METHODS)}.")


def needs_of(methods) -> frozenset:
  """The union of the ``NEEDS`` of ``methods`` (what a pipeline must provide)."""
  check_methods(methods)
  return frozenset().union(*(METHODS[m].needs for m in methods))


def methods_given(provided) -> tuple[str, ...]:
  """Every method whose needs are all in ``provided`` (registry order)."""
  return tuple(m for m, spec in METHODS.items() if spec.needs <= set(provided))

# The methods the evaluation compares by default (all cheap on CPU).
DEFAULT_EVAL_METHODS = ("cmi_knn", "cmi_binned", "mi_knn", "source_train_acc",
                        "source_n_classes", "linear_probe", "logme", "leep")


def check_knn_classes(labels: np.ndarray, cfg: RankConfig) -> None:
  """EstimatorError if a k-NN method's ``k`` exceeds a class of the scoring
  labels ``[n]``. Cheap: ``score_zoo`` runs it before training target nets."""
  if cfg.method.startswith(("cmi_knn", "mi_knn")):
    counts = np.bincount(np.asarray(labels, np.int64))
    small = [c for c, n in enumerate(counts) if 0 < n < cfg.k + 1]
    if small:
      raise EstimatorError(
          f"Class(es) {small} have fewer than k+1={cfg.k + 1} scoring points "
          f"(counts {counts.tolist()}) for --k={cfg.k}; the k-NN estimate would "
          "be meaningless. Use a smaller --k (3 is usual), more labeled target "
          "data (--num_labeled), or the cross-fitting protocol.")


def score_method(inp: RankInputs, cfg: RankConfig,
                 key: jax.Array | None = None) -> np.ndarray:
  """Scores ``[q]`` (higher = better) of ``cfg.method``.

  ``key`` (default ``jax.random.key(cfg.seed)``) seeds jitter, permutations and
  keyed metrics; source i uses ``fold_in(key, i)``.
  """
  if cfg.method not in METHODS:
    raise ConfigError(f"Unknown ranking method {cfg.method!r}; choose one of "
                      f"{sorted(METHODS)}.")
  check_knn_classes(inp.labels, cfg)
  key = jax.random.key(cfg.seed) if key is None else key
  return np.asarray(METHODS[cfg.method](inp, cfg, key), np.float64)
