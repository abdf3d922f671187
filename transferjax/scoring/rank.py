"""Rank a zoo of source CNNs for a target, zero-shot: the paper's pipeline.

``zoo + target split -> N_t -> scoring set (X, Y, T) -> F_i = N_i^{m-1}(X)
-> gamma_i = I(Y; F_i | T) -> ranking``, with ``gamma_max = H(Y | T)`` and the
normalized score ``gamma_i / max_j gamma_j``.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time

import jax
import numpy as np

from transferjax.provenance import provenance
from transferjax import estimators as est
from transferjax import io as tio
from transferjax.data.tasks import TargetSplit
from transferjax.errors import ConfigError, EstimatorError
from transferjax.scoring.methods import (NEEDS, RankConfig, RankInputs,
                                         check_knn_classes, methods_given, needs_of,
                                         score_method)
from transferjax.scoring.target import ScoringSet, build_scoring_set
from transferjax.train import zoo as zoo_lib
from transferjax.transfer.fit import FitConfig


def check_sizes(zoo, split: TargetSplit) -> None:
  """ConfigError unless the target images have the zoo's input size."""
  if split.train.image_size != int(zoo.image_size):
    raise ConfigError(
        f"Source CNNs take {zoo.image_size}x{zoo.image_size} images but the target "
        f"{split.train.name!r} is {split.train.image_size}x{split.train.image_size}. "
        f"Load the target at the zoo's size (--image_size={zoo.image_size}) or train "
        f"a zoo at the target's size (train_sources --image_size="
        f"{split.train.image_size}).")


def check_before_scoring(split: TargetSplit, job: "RankJob",
                         methods: tuple[str, ...] | None = None) -> None:
  """Checks that need no target net (e.g. ``--k`` against the scoring set's
  class sizes), so a bad flag fails before minutes of training."""
  labels = (split.val.labels if job.protocol == "paper"
            else np.concatenate([split.train.labels, split.val.labels]))
  for method in methods or (job.rank.method,):
    check_knn_classes(labels, dataclasses.replace(job.rank, method=method))


def check_provided(methods, has_source_pool: bool) -> None:
  """ConfigError, before any training, for a method whose declared needs
  ``score_zoo`` cannot meet (the source pool comes only from a study)."""
  provided = set(NEEDS) - ({"source_pool"} if not has_source_pool else set())
  missing = [m for m in methods if not needs_of((m,)) <= provided]
  if missing:
    raise ConfigError(
        f"Method(s) {missing} need an RBM per source trained on the source pool, "
        "which a single ranking run does not train; evaluate them with "
        "transferjax.study (python -m experiments.evaluate --methods=...), or pick "
        f"another method: {sorted(methods_given(provided))}.")


def zoo_inputs(zoo, scoring: ScoringSet) -> RankInputs:
  """Runs the whole zoo on the scoring images (one vmapped call per chunk)."""
  missing = [name for name in ("conv1", "conv2", "fc", "head") if name not in zoo.params]
  if missing:
    raise ConfigError(
        f"The zoo's parameters lack layer(s) {missing} (found {sorted(zoo.params)}): "
        "ranking needs the penultimate features layer 'fc' (N^{m-1}) of "
        "transferjax.models. Retrain the zoo with experiments.train_sources, or wrap "
        "your own models so they expose these layers.")
  logits, features = zoo_lib.zoo_outputs(zoo, images=scoring.images)
  features = np.asarray(features, np.float32)
  # Parameters are checked too: XLA:CPU's fused dense+ReLU can turn a NaN weight
  # into a finite feature (measured; docs/notes/pipeline_tests.md).
  q = features.shape[0]
  finite = np.isfinite(features).all(axis=(1, 2))
  for leaf in jax.tree.leaves(zoo.params):
    finite &= np.isfinite(np.asarray(leaf)).reshape(q, -1).all(axis=1)
  if not finite.all():
    bad = np.flatnonzero(~finite)
    raise EstimatorError(f"Source(s) {bad[:10].tolist()} have NaN/inf parameters "
                         "or give NaN/inf features on the target; their "
                         "checkpoints are broken. Retrain them.")
  return RankInputs(
      labels=np.asarray(scoring.labels), t=np.asarray(scoring.t),
      features=features, source_logits=np.asarray(logits, np.float32),
      source_num_classes=np.array([t.num_classes for t in zoo.tasks]),
      folds=np.asarray(scoring.folds),
      source_metrics={"num_train_images": np.array([len(t.train_indices)
                                                     for t in zoo.tasks]),
                      **{k: np.asarray(v) for k, v in zoo.metrics.items()}})


def gamma_max(inp: RankInputs, cfg: RankConfig) -> float:
  """``H(Y | T)``: the upper bound of ``I(Y; F | T)`` for the chosen estimator."""
  if cfg.method == "cmi_binned":
    return float(est.conditional_entropy_y_given_t(inp.labels, inp.t, method="binned",
                                                   bins_t=cfg.bins_t))
  return float(est.conditional_entropy_y_given_t(inp.labels, inp.t, method="knn",
                                                 k=cfg.k, metric=cfg.metric))


def ranking_rows(zoo, scores: np.ndarray, g_max: float | None,
                 uncertainty: dict | None = None) -> list[dict]:
  """One row per source: id, task metadata, gamma, normalized gamma, rank.

  ``uncertainty`` (``uncertainty.summarize``) adds ``gamma_ci_low``,
  ``gamma_ci_high`` and ``p_first`` per source.
  """
  order = np.argsort(-scores, kind="stable")
  rank = np.empty(len(scores), int)
  rank[order] = np.arange(1, len(scores) + 1)
  top = float(np.max(scores))
  rows = []
  for i, task in enumerate(zoo.tasks):
    rows.append({
        "rank": int(rank[i]), "source_id": int(task.task_id), "pool": task.pool,
        "num_classes": task.num_classes,
        "classes": " ".join(str(c) for c in task.classes),
        "num_train": int(len(task.train_indices)),
        "train_acc": float(zoo.metrics.get("train_accuracy", [np.nan] * len(scores))[i]),
        "holdout_acc": float(zoo.metrics.get("holdout_accuracy", [np.nan] * len(scores))[i]),
        "gamma": float(scores[i]),
        "gamma_normalized": float(scores[i] / top) if top > 0 else float("nan"),
        "gamma_max": g_max if g_max is not None else float("nan"),
    })
    if uncertainty is not None:
      rows[-1].update({"gamma_ci_low": float(uncertainty["ci_low"][i]),
                       "gamma_ci_high": float(uncertainty["ci_high"][i]),
                       "p_first": float(uncertainty["p_first"][i])})
  return sorted(rows, key=lambda r: r["rank"])


def format_table(rows: list[dict], top: int = 10) -> str:
  """A readable top-``top`` table (with intervals and P(first) when present)."""
  unc = "p_first" in rows[0]
  head = (f"{'rank':>4}  {'source':>6}  {'pool':<8} {'classes':>7}  "
          f"{'holdout acc':>11}  {'gamma':>8}  {'normalized':>10}")
  if unc:
    head += f"  {'90% interval':>17}  {'P(first)':>8}"
  lines = [head, "-" * len(head)]
  for r in rows[:top]:
    line = (f"{r['rank']:>4}  {r['source_id']:>6}  {r['pool'][:8]:<8} "
            f"{r['num_classes']:>7}  {r['holdout_acc']:>11.3f}  "
            f"{r['gamma']:>8.4f}  {r['gamma_normalized']:>10.3f}")
    if unc:
      ci = f"[{r['gamma_ci_low']:.4f}, {r['gamma_ci_high']:.4f}]"
      line += f"  {ci:>17}  {r['p_first']:>8.2f}"
    lines.append(line)
  return "\n".join(lines)


def explain_scores(rows: list[dict], uncertainty: dict | None, n: int,
                   method: str) -> str:
  """Plain-language notes under the table: what to pick, how sure, what the
  columns and negative or zero scores mean."""
  best = rows[0]
  lines = []
  if method.startswith(("cmi", "mi_knn")):
    lines.append(
        "gamma: estimated information (nats) the source's features carry about the "
        "label beyond what the target net already knows; normalized = gamma / the "
        "top gamma. gamma near 0 or negative means no evidence of extra "
        "information (the estimate is noisy around 0 and not clipped), so such "
        "sources are not worth fine-tuning from on this score.")
  if uncertainty is not None:
    p = uncertainty["p_top_first"]
    lo = best.get("gamma_ci_low", float("nan"))
    close = [r["source_id"] for r in rows[1:] if r.get("gamma_ci_high", -np.inf) >= lo]
    lines.append(
        f"90% interval and P(first): {uncertainty['num_boot']} bootstrap resamples "
        f"of the {n} scoring images (the sampling noise of the scoring set, not of "
        "training the target net); P(first) = share of resamples in which the "
        "source scores highest.")
    verdict = (f"Recommended: source {best['source_id']} (P(first) = {p:.2f}"
               + (f"; sources {close[:5]} overlap its interval: fine-tune the top "
                  "few if you can" if close and p < 0.9 else "") + ").")
    if best["gamma"] <= 0:
      verdict = ("No source shows information beyond the target net "
                 f"(top gamma {best['gamma']:.4f} <= 0): fine-tuning from any of "
                 "them is not supported by this score.")
    lines.append(verdict)
  else:
    lines.append(f"Recommended: source {best['source_id']} (no interval for "
                 f"method {method}: only the k-NN methods have one).")
  return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class RankJob:
  """One ranking run: a zoo, a target split, a protocol and a method."""
  protocol: str = "crossfit"
  folds: int = 5
  num_target_seeds: int = 1
  rank: RankConfig = RankConfig()
  fit: FitConfig = FitConfig()


def score_zoo(zoo, split: TargetSplit, job: RankJob, *,
              methods: tuple[str, ...] | None = None,
              key: jax.Array | None = None,
              source_pool_models: dict | None = None,
              ) -> tuple[dict, RankInputs, ScoringSet]:
  """Scores every source with each method (default: ``job.rank.method``).

  ``source_pool_models`` (e.g. the RBM baseline's per-source RBMs) reach the
  methods that declare the ``"source_pool"`` need, with the split's labeled
  target images (``"target_images"``).

  Returns:
    (``{method: scores [q]}``, the ``RankInputs``, the ``ScoringSet``).
  """
  check_provided(methods or (job.rank.method,), source_pool_models is not None)
  check_sizes(zoo, split)
  check_before_scoring(split, job, methods)
  key = jax.random.key(job.rank.seed) if key is None else key
  fit_cfg = dataclasses.replace(job.fit, arch=zoo.arch,
                                max_classes=max(2, split.train.num_classes))
  t0 = time.time()
  scoring = build_scoring_set(split, protocol=job.protocol, folds=job.folds,
                              cfg=fit_cfg, key=key,
                              num_target_seeds=job.num_target_seeds)
  logging.info("target net(s) trained in %.1fs; scoring set n=%d", time.time() - t0,
               len(scoring.labels))
  inp = dataclasses.replace(zoo_inputs(zoo, scoring),
                            target_images=split.train.images,
                            source_pool_models=source_pool_models)
  out = {}
  for method in methods or (job.rank.method,):
    t1 = time.time()
    out[method] = score_method(inp, dataclasses.replace(job.rank, method=method))
    logging.info("method %s: %.2fs", method, time.time() - t1)
  return out, inp, scoring


def write_ranking(workdir: str, zoo, scores: np.ndarray, g_max: float | None,
                  meta: dict, uncertainty: dict | None = None) -> list[dict]:
  """Writes ``ranking.json`` and ``ranking.csv`` atomically; returns the rows."""
  rows = ranking_rows(zoo, scores, g_max, uncertainty)
  tio.write_json(os.path.join(workdir, "ranking.json"),
                 {**meta, "ranking": rows, "provenance": provenance()})
  tio.write_csv(os.path.join(workdir, "ranking.csv"), rows)
  return rows
