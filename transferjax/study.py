"""One experiment end to end: zoo -> ground truth -> rankings -> evaluation.

Steps, each resumable on its own (a finished split is a file, skipped on rerun):

1. the zoo (``transferjax.train.zoo.run``, resumable per chunk);
2. per target split ``s``: fine-tune every source x seed and the no-transfer net
   (``transfer/split_{s}.json``; while it runs, finished chunks of 64 models are
   kept in ``transfer/split_{s}_chunks/``, so a killed run resumes mid-split);
3. per target split ``s``: score every source with every method
   (``scores/split_{s}.json``);
4. evaluate (pure statistics, no training): ground truth = mean test AUC over
   seeds and splits, with its split-half reliability as the ceiling; every
   method's rank statistics; the transfer-matters diagnostic;
5. output stages over the typed ``StudyResult``: figures, the optional Fig. 8
   curve (which fine-tunes the best and worst sources again), ``report.md`` and
   ``evaluation.json``.

``run_study`` returns the ``StudyResult``; ``load_study`` builds the same result
from a finished study's files (resume, ``--board_only``). Used by ``experiments.transfer``, ``experiments.evaluate``, ``experiments.paper``
and ``experiments.demo``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from typing import Any

import jax
import numpy as np

from transferjax.provenance import provenance
from transferjax import io as tio
from transferjax.data import (DEFAULT_FRACTION, DEFAULT_VAL_FRACTION, paper_split,
                              split_sizes_report)
from transferjax.errors import CheckpointError, ConfigError
from transferjax.scoring.job import load_target_for_zoo, open_zoo
from transferjax.scoring.methods import (DEFAULT_EVAL_METHODS, RankConfig,
                                         check_methods, needs_of)
from transferjax.scoring.informative import ranking_warnings
from transferjax.scoring.rank import RankJob, gamma_max, score_zoo
from transferjax.transfer.finetune import finetune_sources
from transferjax.transfer.fit import FitConfig


@dataclasses.dataclass(frozen=True)
class StudyConfig:
  """One target, one zoo, several splits and seeds.

  Attributes:
    workdir: output folder (``transfer/``, ``scores/``, report, figures).
    zoo_dir: the zoo's workdir.
    target: target spec (``mnist:4,9``, ``spots``, ...).
    fraction: labeled share of the target (``D_a``); the paper's 5%.
    num_labeled: absolute ``|D_a|`` (overrides ``fraction``).
    shots_per_class: few-shot ``D_a``: this many labeled images of every class
      (overrides ``num_labeled`` and ``fraction``).
    max_test_per_class: cap on ``D_e`` per class (None: the rest of the data).
    val_fraction: share of the labeled images held out for early stopping
      (``D_v``; at least 2 per class).
    gt_metric: ground-truth score (``transfer.gt_metrics``): ``"auto"`` is
      test AUC for binary targets and top-1 accuracy for multi-class ones.
    num_splits: target splits (seeds ``split_seed .. split_seed + num_splits - 1``)
      the ground truth averages.
    num_seeds: fine-tuning seeds per source and split.
    finetune: fine-tuning config (early stopping, budgets, frozen conv).
    job: ranking protocol, folds and the ranking-method config.
    methods: the ranking methods to evaluate (keys of
      ``scoring.methods.METHODS``; only the inputs they need are computed).
    rbm_hidden, rbm_epochs: the RBM baseline's size and training length.
    seed: root seed of fine-tuning and RBMs.
    split_seed: seed of the first target split (another draw of the splits).
    finetune_chunk: models per compiled fine-tuning call (a last partial chunk
      is padded, so a chunk that holds every source x seed saves work).
  """
  workdir: str
  zoo_dir: str
  target: str = "mnist:4,9"
  fraction: float = DEFAULT_FRACTION
  num_labeled: int | None = None
  shots_per_class: int | None = None
  max_test_per_class: int | None = None
  gt_metric: str = "auto"
  num_splits: int = 3
  num_seeds: int = 3
  finetune: FitConfig = FitConfig()
  job: RankJob = RankJob()
  methods: tuple[str, ...] = DEFAULT_EVAL_METHODS + ("rbm",)
  rbm_hidden: int = 64
  rbm_epochs: int = 5
  seed: int = 0
  finetune_chunk: int = 64
  split_seed: int = 0
  val_fraction: float = DEFAULT_VAL_FRACTION

  def __post_init__(self):
    check_methods(self.methods)
    if self.num_splits < 1 or self.num_seeds < 1:
      raise ConfigError("num_splits and num_seeds must be >= 1.")


def _split(cfg: StudyConfig, target, s: int):
  return paper_split(target, fraction=cfg.fraction, num_labeled=cfg.num_labeled,
                     seed=cfg.split_seed + s, shots_per_class=cfg.shots_per_class,
                     max_test_per_class=cfg.max_test_per_class,
                     val_fraction=cfg.val_fraction)


def _fingerprint(target) -> str:
  """Hash of the target's pixels and labels: a changed loader default (e.g. the
  spots difficulty) must not silently reuse results made from other data."""
  h = hashlib.sha256(np.ascontiguousarray(target.images).tobytes())
  h.update(np.ascontiguousarray(target.labels).tobytes())
  return h.hexdigest()[:16]


def _signature(cfg: StudyConfig, target) -> dict:
  """What a finished split file must agree with to be reused."""
  sig = {"target": cfg.target, "target_data": _fingerprint(target),
         "fraction": cfg.fraction,
         "num_labeled": cfg.num_labeled, "num_seeds": cfg.num_seeds,
         "finetune": dataclasses.asdict(cfg.finetune), "seed": cfg.seed,
         "zoo": os.path.abspath(cfg.zoo_dir)}
  # Only when set, so results made before these options existed stay reusable.
  for name in ("shots_per_class", "max_test_per_class"):
    if getattr(cfg, name) is not None:
      sig[name] = getattr(cfg, name)
  if cfg.split_seed:
    sig["split_seed"] = cfg.split_seed
  if cfg.val_fraction != DEFAULT_VAL_FRACTION:
    sig["val_fraction"] = cfg.val_fraction
  if cfg.gt_metric != "auto":
    sig["gt_metric"] = cfg.gt_metric
  return sig


def _describe_diff(stored: dict, signature: dict, keys: list[str]) -> str:
  """``key: stored X, given Y`` per differing key (long values shortened)."""
  def short(v):
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."
  parts = []
  for k in keys:
    a, b = stored.get(k), tio._to_jsonable(signature[k])
    if isinstance(a, dict) and isinstance(b, dict):  # name the differing fields
      sub = [f for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f)]
      parts += [f"{k}.{f}: stored {short(a.get(f))}, given {short(b.get(f))}"
                for f in sub]
    else:
      parts.append(f"{k}: stored {short(a)}, given {short(b)}")
  return "; ".join(parts)


def _reuse(path: str, signature: dict) -> dict | None:
  if not os.path.exists(path):
    return None
  data = tio.read_json(path)
  stored = data.get("signature", {})
  diff = [k for k in signature if stored.get(k) != tio._to_jsonable(signature[k])]
  if diff:
    raise CheckpointError(
        f"{path} was made with different settings: {_describe_diff(stored, signature, diff)}. "
        "Rerun with the stored values (e.g. the same --target / --num_labeled / "
        "--num_seeds as experiments.transfer) or use a new --workdir.")
  return data


def _cached(path: str, signature: dict, compute) -> dict:
  """The result stored at ``path`` if it was made with ``signature``; otherwise
  ``compute()`` (a dict), stored atomically with the signature (process 0)."""
  data = _reuse(path, signature)
  if data is None:
    data = {"signature": signature, **compute()}
    if jax.process_index() == 0:
      tio.write_json(path, data)
  return data


def _ground_truth_runs(cfg: StudyConfig, zoo, target) -> list[dict]:
  """Per split ``s``: fine-tunes every source (or reuses ``transfer/split_{s}.json``)."""
  tio.check_output_dir(cfg.workdir)
  sig = _signature(cfg, target)
  def fine_tune(s):
    t0 = time.time()
    split = _split(cfg, target, s)
    logging.info("split %d: %s", s, split_sizes_report(split))
    fit = dataclasses.replace(cfg.finetune, arch=zoo.arch,
                              max_classes=max(2, split.train.num_classes))
    # Finished chunks of models are kept (a large zoo's split is hours of CPU).
    chunk_dir = os.path.join(cfg.workdir, "transfer", f"split_{s}_chunks")
    chunk_sig = os.path.join(chunk_dir, "signature.json")
    if _reuse(chunk_sig, sig) is None and jax.process_index() == 0:
      tio.write_json(chunk_sig, {"signature": sig})
    out = finetune_sources(zoo.params, split, num_seeds=cfg.num_seeds, cfg=fit,
                           root_key=jax.random.fold_in(jax.random.key(cfg.seed), s),
                           metric=cfg.gt_metric, model_chunk=cfg.finetune_chunk,
                           chunk_dir=chunk_dir)
    print(f"split {s}: fine-tuned {out.auc.size + out.no_transfer.size} models in "
          f"{time.time() - t0:.0f}s; no-transfer {out.metric} "
          f"{out.no_transfer.mean():.4f}, sources {out.auc.mean(1).min():.4f}.."
          f"{out.auc.mean(1).max():.4f}", flush=True)
    return {"split": s, "sizes": split.sizes(), "metric": out.metric,
            "secondary": out.secondary,
            "secondary_no_transfer": out.secondary_no_transfer,
            "auc": out.auc, "no_transfer": out.no_transfer, "epochs": out.epochs,
            "no_transfer_epochs": out.no_transfer_epochs,
            "budget_auc": {str(b): v for b, v in out.budget_auc.items()},
            "budget_no_transfer": {str(b): v for b, v in out.budget_no_transfer.items()},
            "seconds": round(time.time() - t0, 1)}

  return [_cached(os.path.join(cfg.workdir, "transfer", f"split_{s}.json"), sig,
                  lambda s=s: fine_tune(s)) for s in range(cfg.num_splits)]


def _stack_ground_truth(runs: list[dict]) -> dict:
  """The per-split ground-truth records (fresh or read from their files)
  stacked on a last ``splits`` axis."""
  stack = lambda key: np.stack([np.asarray(r[key], np.float64) for r in runs], -1)
  budgets = sorted(runs[0]["budget_auc"], key=int)
  secondary = sorted(runs[0].get("secondary", {}))
  return {"auc": stack("auc"), "no_transfer": stack("no_transfer"),
          "epochs": stack("epochs"), "sizes": runs[0]["sizes"],
          "metric": runs[0].get("metric", "auc"),
          "secondary": {m: np.stack([np.asarray(r["secondary"][m]) for r in runs], -1)
                        for m in secondary},
          "secondary_no_transfer": {
              m: np.stack([np.asarray(r["secondary_no_transfer"][m]) for r in runs], -1)
              for m in secondary},
          "budget_auc": {b: np.stack([np.asarray(r["budget_auc"][b]) for r in runs], -1)
                         for b in budgets},
          "budget_no_transfer": {
              b: np.stack([np.asarray(r["budget_no_transfer"][b]) for r in runs], -1)
              for b in budgets}}


def _write_ground_truth(cfg: StudyConfig, zoo, result: dict) -> None:
  """``transfer.csv`` and ``transfer.json``: the ground truth per source."""
  budgets = sorted(result["budget_auc"], key=int)
  rows = []
  for i, task in enumerate(zoo.tasks):
    rows.append({"source_id": task.task_id, "pool": task.pool,
                 "num_classes": task.num_classes,
                 "auc_mean": result["auc"][i].mean(), "auc_sd": _sd(result["auc"][i]),
                 "epochs_mean": result["epochs"][i].mean(),
                 **{f"auc_{b}ep": result["budget_auc"][b][i].mean() for b in budgets}})
  if jax.process_index() == 0:
    tio.write_csv(os.path.join(cfg.workdir, "transfer.csv"), rows)
    tio.write_json(os.path.join(cfg.workdir, "transfer.json"),
                   {"target": cfg.target, "metric": result["metric"], "sources": rows,
                    "no_transfer": {"mean": result["no_transfer"].mean(),
                                    "sd": _sd(result["no_transfer"])},
                    "auc": result["auc"], "no_transfer_runs": result["no_transfer"]})


def ground_truth(cfg: StudyConfig, zoo, target) -> dict:
  """Fine-tunes every source on every split (resumable per split).

  Returns:
    ``{"auc": [q, seeds, splits], "no_transfer": [seeds, splits], "epochs": ...,
    "budget_auc": {epoch: [q, seeds, splits]}, "budget_no_transfer": ...}``.
  """
  result = _stack_ground_truth(_ground_truth_runs(cfg, zoo, target))
  _write_ground_truth(cfg, zoo, result)
  return result


def _rbm_params(cfg: StudyConfig, zoo) -> Any:
  """One RBM per source task on its own source images (cached as .npz)."""
  from transferjax.baselines import rbm as rbm_lib
  from transferjax.data import load_dataset
  from transferjax.transfer.fit import pad_index_sets
  path = os.path.join(cfg.workdir, "rbm.npz")
  if os.path.exists(path):
    return tio.load_npz(path)
  if zoo.config.get("dataset") is None:
    raise ConfigError("The rbm baseline trains on the zoo's source pool, and a zoo "
                      f"union ({cfg.zoo_dir}) has one pool per member; leave 'rbm' "
                      "out of the methods for a union.")
  pool = load_dataset(zoo.config["dataset"], image_size=int(zoo.image_size),
                      seed=int(zoo.config["seed"]))
  idx, lengths = pad_index_sets([t.train_indices for t in zoo.tasks])
  t0 = time.time()
  params = rbm_lib.train_rbms(
      jax.random.fold_in(jax.random.key(cfg.seed), 7919), pool.images, idx, lengths,
      np.array([t.task_id for t in zoo.tasks]), num_hidden=cfg.rbm_hidden,
      epochs=cfg.rbm_epochs)
  params = {k: np.asarray(v) for k, v in params.items()}
  logging.info("trained %d RBMs in %.1fs", len(zoo.tasks), time.time() - t0)
  if jax.process_index() == 0:
    tio.save_npz(path, **params)
  return params


def _score_warnings(job: RankJob, inp, scoring, scores: dict) -> dict:
  """``{method: [sentence, ...]}`` for methods whose scores carry no
  information on this split (``transferjax.scoring.informative``)."""
  g_max = (gamma_max(inp, job.rank)
           if any(m.startswith("cmi") for m in scores) else None)
  out = {}
  for m, v in scores.items():
    warn, _ = ranking_warnings(inp.labels, inp.t, v, m,
                               g_max if m.startswith("cmi") else None,
                               scoring.images)
    if warn:
      out[m] = warn
  return out


def _report_warnings(score_warnings: list[dict]) -> list[str]:
  """Report lines for the per-split warnings stored with the scores."""
  return [f"WARNING ({m}, split {s}): its scores carry no information. {w}"
          for s, per_method in enumerate(score_warnings)
          for m, warn in per_method.items() for w in warn]


def _score_runs(cfg: StudyConfig, zoo, target) -> list[dict]:
  """Per split ``s``: every method's scores (or ``scores/split_{s}.json``)."""
  sig = {**_signature(cfg, target), "job": dataclasses.asdict(cfg.job),
         "methods": list(cfg.methods)}
  # Inputs beyond the zoo outputs, computed only when a chosen method needs them.
  pool_models = (_rbm_params(cfg, zoo) if "source_pool" in needs_of(cfg.methods)
                 else None)
  def score(s):
    t0 = time.time()
    split = _split(cfg, target, s)
    job = dataclasses.replace(cfg.job, rank=dataclasses.replace(
        cfg.job.rank, seed=cfg.job.rank.seed + s))
    scores, inp, scoring = score_zoo(zoo, split, job, methods=tuple(cfg.methods),
                                     source_pool_models=pool_models)
    warnings = _score_warnings(job, inp, scoring, scores)
    if jax.process_index() == 0:
      # What every method saw, so new methods can be scored without retraining
      # the target nets (features [q, n, 200], T, labels, folds, source logits).
      tio.save_npz(os.path.join(cfg.workdir, "scores", f"inputs_{s}.npz"),
                   labels=inp.labels, t=inp.t, features=inp.features,
                   source_logits=inp.source_logits, folds=inp.folds,
                   source_num_classes=inp.source_num_classes,
                   **{f"metric_{k}": np.asarray(v, np.float64)
                      for k, v in inp.source_metrics.items()})
    print(f"split {s}: scored {len(zoo.tasks)} sources with {len(scores)} methods "
          f"in {time.time() - t0:.0f}s", flush=True)
    return {"split": s, "scoring_set_size": len(scoring.labels),
            "scores": {m: np.asarray(v, np.float64) for m, v in scores.items()},
            "warnings": warnings,
            "seconds": round(time.time() - t0, 1)}

  return [_cached(os.path.join(cfg.workdir, "scores", f"split_{s}.json"), sig,
                  lambda s=s: score(s)) for s in range(cfg.num_splits)]


def _stack_scores(runs: list[dict], methods) -> dict:
  """``{method: [q, splits]}`` from the per-split score records."""
  return {m: np.stack([np.asarray(d["scores"][m], np.float64) for d in runs], -1)
          for m in methods}


def rankings(cfg: StudyConfig, zoo, target) -> dict:
  """Scores of every method on every split (resumable per split).

  Returns:
    ``{method: [q, splits]}``.
  """
  return _stack_scores(_score_runs(cfg, zoo, target), cfg.methods)


def _sd(values) -> float:
  """Sample sd (ddof=1) of the finite values; NaN ("undefined", shown as a
  dash) with fewer than two, never a made-up 0.0."""
  v = np.asarray(values, np.float64).ravel()
  v = v[np.isfinite(v)]
  return float(v.std(ddof=1)) if v.size > 1 else float("nan")


def _diagnostic(auc: np.ndarray, no_transfer: np.ndarray, seed: int) -> dict | None:
  """The transfer-matters diagnostic, or None when there are fewer than 2 runs
  per source or 3 sources (no noise estimate, no reliability)."""
  from transferjax.evaluation import diagnostic
  runs = np.asarray(auc).reshape(np.shape(auc)[0], -1)
  if runs.shape[0] < 3 or runs.shape[1] < 2:
    return None
  return diagnostic.transfer_matters(auc, no_transfer, seed=seed)


def _per_split(scores: dict, truth: np.ndarray) -> dict:
  """Each split's ranking against the overall ground truth: a practitioner has
  one split, so the mean and sd over splits say what one ranking is worth."""
  from transferjax.evaluation import stats
  out = {}
  for m, sc in scores.items():
    taus = [stats.rank_statistics(sc[:, s], truth) for s in range(sc.shape[1])]
    out[m] = {key: {"mean": float(np.nanmean([t[key] for t in taus])),
                    "sd": _sd([t[key] for t in taus])}
              for key in ("weighted_tau", "spearman")}
  return out


def fraction_curve(cfg: StudyConfig, zoo, target, fractions: tuple[float, ...],
                   method: str) -> dict:
  """Fig. 8: best-ranked vs worst-ranked source vs no transfer as D_a grows.

  At each fraction the sources are re-ranked (``method``) on that fraction's
  split (seed 0), and only the best, the worst and the no-transfer net are
  fine-tuned (``cfg.num_seeds`` seeds).
  """
  sig = {**_signature(cfg, target), "fractions": list(fractions), "method": method}

  def curve():
    rows = []
    for frac in fractions:
      split = paper_split(target, fraction=frac, seed=0)
      job = dataclasses.replace(cfg.job, rank=dataclasses.replace(cfg.job.rank,
                                                                  method=method))
      scores, _, _ = score_zoo(zoo, split, job, methods=(method,))
      order = np.argsort(-scores[method], kind="stable")
      pick = [int(order[0]), int(order[-1])]
      fit = dataclasses.replace(cfg.finetune, arch=zoo.arch,
                                max_classes=max(2, split.train.num_classes))
      params = jax.tree.map(lambda a: np.asarray(a)[pick], zoo.params)
      out = finetune_sources(params, split, num_seeds=cfg.num_seeds, cfg=fit,
                             root_key=jax.random.fold_in(jax.random.key(cfg.seed), 99))
      rows.append({"fraction": frac, "train_size": split.train.num_examples,
                   "best_source": zoo.tasks[pick[0]].task_id,
                   "worst_source": zoo.tasks[pick[1]].task_id,
                   "best": out.auc[0].mean(), "best_sd": _sd(out.auc[0]),
                   "worst": out.auc[1].mean(), "worst_sd": _sd(out.auc[1]),
                   "none": out.no_transfer.mean(), "none_sd": _sd(out.no_transfer)})
      print(f"fraction {frac}: best {rows[-1]['best']:.4f} worst {rows[-1]['worst']:.4f} "
            f"none {rows[-1]['none']:.4f}", flush=True)
    return {"rows": rows}

  return _cached(os.path.join(cfg.workdir, "fraction_curve.json"), sig, curve)


@dataclasses.dataclass(frozen=True)
class StudyResult:
  """Everything a finished study computed, typed (``run_study``/``load_study``).

  Attributes:
    config: the study's config.
    source_ids: ``[q]`` source task ids, in zoo order.
    ground_truth: ``ground_truth``'s dict: ``auc`` ``[q, seeds, splits]``,
      ``no_transfer`` ``[seeds, splits]``, ``epochs``, ``budget_auc``,
      ``secondary``, ``sizes``, ``metric``.
    scores: ``{method: [q, splits]}`` every method's scores per split.
    evaluation: the statistics (the content of ``evaluation.json``).
    score_warnings: per split, ``{method: [sentence, ...]}`` for scores that
      carry no information on that split.
    split_seconds: seconds the per-split fine-tuning and scoring took when
      first computed (a resumed split keeps its first run's time).
    paths: ``{"workdir", "evaluation", "report", "figures": [...]}``.
  """
  config: StudyConfig
  source_ids: tuple[int, ...]
  ground_truth: dict
  scores: dict
  evaluation: dict
  score_warnings: tuple[dict, ...] = ()
  split_seconds: float = 0.0
  paths: dict = dataclasses.field(default_factory=dict)

  @property
  def truth(self) -> np.ndarray:
    """``[q]`` the ground truth: mean over seeds and splits."""
    auc = self.ground_truth["auc"]
    return auc.reshape(auc.shape[0], -1).mean(1)

  @property
  def mean_scores(self) -> dict:
    """``{method: [q]}`` scores averaged over splits."""
    return {m: v.mean(axis=1) for m, v in self.scores.items()}

  @property
  def diagnostic(self) -> dict | None:
    return self.evaluation.get("diagnostic")


def _assemble(cfg: StudyConfig, source_ids, gt_runs: list[dict],
              score_runs: list[dict], evaluation: dict) -> StudyResult:
  """The typed result from the per-split records (fresh or read from files)."""
  workdir = cfg.workdir
  figures = os.path.join(workdir, "figures")
  return StudyResult(
      config=cfg, source_ids=tuple(int(i) for i in source_ids),
      ground_truth=_stack_ground_truth(gt_runs),
      # The methods the score files hold (a finished study may hold more than
      # a later config asks for).
      scores=_stack_scores(score_runs, list(score_runs[0]["scores"])),
      evaluation=evaluation,
      score_warnings=tuple(d.get("warnings") or {} for d in score_runs),
      split_seconds=round(float(sum(r.get("seconds", 0.0)
                                    for r in gt_runs + score_runs)), 1),
      paths={"workdir": workdir,
             "evaluation": os.path.join(workdir, "evaluation.json"),
             "report": os.path.join(workdir, "report.md"),
             "figures": sorted(os.path.join(figures, f) for f in os.listdir(figures)
                               if f.endswith(".png")) if os.path.isdir(figures) else []})


def load_study(cfg: StudyConfig) -> StudyResult:
  """The ``StudyResult`` of a finished study, from its files (no computation).

  Raises:
    CheckpointError: a file of the study is missing (run ``run_study`` first).
  """
  def read(*parts):
    path = os.path.join(cfg.workdir, *parts)
    if not os.path.exists(path):
      raise CheckpointError(f"{path} is missing: the study in {cfg.workdir} is not "
                            "finished; run it (transferjax.study.run_study) first.")
    return tio.read_json(path)
  gt_runs = [read("transfer", f"split_{s}.json") for s in range(cfg.num_splits)]
  score_runs = [read("scores", f"split_{s}.json") for s in range(cfg.num_splits)]
  ids = [row["source_id"] for row in read("transfer.json")["sources"]]
  return _assemble(cfg, ids, gt_runs, score_runs, read("evaluation.json"))


def evaluate(cfg: StudyConfig, zoo, gt: dict, scores: dict) -> dict:
  """Rank statistics of every method against the ground truth (no training,
  no inference: ``zoo`` is read for its task metadata only).

  Args:
    cfg: the study config.
    zoo: the opened zoo (``tasks``, ``metrics``).
    gt: ``ground_truth``'s dict.
    scores: ``{method: [q, splits]}``.

  Returns:
    the statistics written to ``evaluation.json``.
  """
  from transferjax.evaluation import answer, report
  from transferjax.scoring.weak import weak_sources
  mean_scores = {m: v.mean(axis=1) for m, v in scores.items()}
  truth = gt["auc"].reshape(gt["auc"].shape[0], -1).mean(1)
  ev = report.evaluate_methods(mean_scores, gt["auc"], no_transfer=gt["no_transfer"],
                               seed=cfg.seed)
  for m, v in _per_split(scores, truth).items():
    ev["methods"][m]["per_split"] = v
  ev["budgets"] = {}
  for b, auc_b in gt["budget_auc"].items():
    ev_b = report.evaluate_methods(mean_scores, auc_b,
                                   no_transfer=gt["budget_no_transfer"][b],
                                   seed=cfg.seed, num_pools=0)
    ev["budgets"][f"{b}_epochs"] = {
        "ceiling": ev_b["ceiling"], "degenerate": ev_b["degenerate"],
        "no_transfer": ev_b["no_transfer"],
        "reliability": ev_b["reliability"],
        "methods": {m: {k: ev_b["methods"][m][k] for k in
                        ("weighted_tau", "spearman", "kendall_tau", "top1_hit")}
                    for m in mean_scores}}
  for m, sec in gt.get("secondary", {}).items():
    ev_m = report.evaluate_methods(mean_scores, sec,
                                   no_transfer=gt["secondary_no_transfer"][m],
                                   seed=cfg.seed, num_pools=0)
    ev["secondary_ground_truth"] = ev.get("secondary_ground_truth", {})
    ev["secondary_ground_truth"][m] = {
        "ceiling": ev_m["ceiling"], "degenerate": ev_m["degenerate"],
        "no_transfer": ev_m["no_transfer"],
        "diagnostic": _diagnostic(sec, gt["secondary_no_transfer"][m], cfg.seed),
        "methods": {k: {x: ev_m["methods"][k][x] for x in
                        ("weighted_tau", "spearman", "kendall_tau", "top1_hit")}
                    for k in mean_scores}}
  ev["ground_truth_metric"] = gt.get("metric", "auc")
  ev["diagnostic"] = _diagnostic(gt["auc"], gt["no_transfer"], cfg.seed)
  ev["target"] = cfg.target
  ev["split_sizes"] = gt["sizes"]
  ev["num_splits"], ev["num_seeds"] = cfg.num_splits, cfg.num_seeds
  ev["truth_spread"] = {"min": float(truth.min()), "max": float(truth.max())}
  ev["weak_sources"] = weak_sources(zoo.tasks, zoo.metrics.get(
      "holdout_accuracy", np.full(len(zoo.tasks), np.nan)))
  primary = _primary(cfg, mean_scores)
  nt_mean = float(np.mean(gt["no_transfer"]))
  src_rows = answer.source_rows([t.task_id for t in zoo.tasks],
                                [t.num_classes for t in zoo.tasks], gt["auc"],
                                mean_scores[primary], primary, nt_mean)
  ev["answer"] = answer.answer(ev, src_rows, primary)
  ev["sources"] = src_rows
  return ev


def _primary(cfg: StudyConfig, mean_scores: dict) -> str:
  """The method the report ranks by: the job's, else the first evaluated."""
  if cfg.job.rank.method in mean_scores:
    return cfg.job.rank.method
  return next(iter(mean_scores))


def figures(result: StudyResult, zoo, target) -> list[str]:
  """Fig. 6 (score vs ground truth), the sub-pool tau distributions and Fig. 7
  (the best- and worst-ranked sources' features on test images: inference
  only). Returns the PNG paths."""
  from transferjax.evaluation import figures as figs
  from transferjax.evaluation import stats
  from transferjax.train import zoo as zoo_lib
  cfg, gt, ev = result.config, result.ground_truth, result.evaluation
  mean_scores, truth = result.mean_scores, result.truth
  fig_dir = os.path.join(cfg.workdir, "figures")
  truth_name = "AUC" if str(gt.get("metric", "auc")).lower() == "auc" else gt["metric"]
  runs = gt["auc"].reshape(len(truth), -1)
  paths = [figs.plot_score_vs_auc(
      mean_scores, truth, float(np.mean(gt["no_transfer"])),
      os.path.join(fig_dir, "fig6_score_vs_auc.png"),
      auc_err=runs.std(1, ddof=1) if runs.shape[1] > 1 else None,
      title=f"{cfg.target}: ranking score vs {truth_name} after transfer",
      point_labels=list(result.source_ids), truth_name=truth_name)]
  names, taus = stats.subpool_table(mean_scores, truth,
                                    pool_size=min(10, len(truth) - 1), num_pools=100,
                                    seed=cfg.seed)
  paths.append(figs.plot_tau_distributions(
      {n: taus[:, j] for j, n in enumerate(names)},
      os.path.join(fig_dir, "tau_subpools.png"),
      ceiling=(ev["ceiling"] or {}).get("weighted_tau") if ev["ceiling"] else None))
  primary = _primary(cfg, mean_scores)
  order = np.argsort(-mean_scores[primary], kind="stable")
  test = _split(cfg, target, 0).test
  rows = np.random.default_rng(0).permutation(test.num_examples)[:600]
  pick = [int(order[0]), int(order[-1])]
  feats = zoo_lib.zoo_features(jax.tree.map(lambda a: np.asarray(a)[pick], zoo.params),
                               zoo.arch, test.images[rows])
  paths.append(figs.plot_features_3d(
      feats[0], feats[1], test.labels[rows], os.path.join(fig_dir, "fig7_features.png"),
      names=(f"best-ranked by {primary} (source {result.source_ids[pick[0]]})",
             f"worst-ranked (source {result.source_ids[pick[1]]})"),
      class_names=test.class_names))
  return paths


def fraction_figure(result: StudyResult, rows: list[dict]) -> str:
  """Fig. 8 from ``fraction_curve``'s rows; returns the PNG path."""
  from transferjax.evaluation import figures as figs
  col = lambda k: [row[k] for row in rows]
  return figs.plot_auc_vs_fraction(
      col("fraction"), col("best"), col("worst"), col("none"),
      os.path.join(result.config.workdir, "figures", "fig8_auc_vs_fraction.png"),
      best_sd=col("best_sd"), worst_sd=col("worst_sd"), none_sd=col("none_sd"))


def write_report(result: StudyResult, zoo, figure_paths: list[str],
                 title: str | None = None) -> None:
  """``report.md`` (answer, notes, tables, figures) and the evaluation tables."""
  from transferjax.evaluation import answer, diagnostic, report
  from transferjax.scoring.weak import weak_sources_message
  cfg, gt, ev = result.config, result.ground_truth, result.evaluation
  # Warnings first: a reader must see them before any table is believed.
  notes = _report_warnings(list(result.score_warnings)) + [
      f"Target {cfg.target}; D_a = {cfg.num_labeled or cfg.fraction} "
      f"(sizes of split 0: {gt['sizes']}); {cfg.num_splits} splits x "
      f"{cfg.num_seeds} fine-tuning seeds; ranking protocol {cfg.job.protocol}.",
      "Scores are averaged over splits before the statistics; `per_split` in "
      "evaluation.json gives each single split's ranking against the same truth.",
      "The ceiling is the split-half rank agreement of the ground truth with itself.",
      f"Ground truth: test {ev['ground_truth_metric']} (binary targets: AUC; "
      "multi-class: top-1 accuracy, mean per-class accuracy in "
      "`secondary_ground_truth`).",
  ]
  if ev["diagnostic"]:
    notes.append("Transfer-matters diagnostic: " + diagnostic.format_line(
        ev["diagnostic"], ev["ground_truth_metric"]) + ".")
  if ev.get("degenerate"):
    notes.append("WARNING: this ground truth is degenerate (spread across sources "
                 "not above seed/split noise); no ranking can be judged here.")
  for b, e in ev["budgets"].items():
    ceil_b = (e["ceiling"] or {}).get("spearman")
    notes.append(f"Fixed budget {b} (no early stopping): ceiling "
                 + (f"{ceil_b:.3f} (Spearman); " if ceil_b is not None
                    else "undefined (one run per source); ")
                 + ", ".join(f"{m} Spearman {v['spearman']:.3f}"
                             for m, v in e["methods"].items()))
  warning = weak_sources_message(ev["weak_sources"], len(zoo.tasks), zoo.config)
  if warning:
    notes.insert(0, warning)
  primary = _primary(cfg, result.mean_scores)
  lead = ["## Answer", "", ev["answer"], "",
          f"## Sources, ranked by {primary}", "",
          report.leaderboard_markdown(ev["sources"], float_fmt="{:.4f}")]
  answer.write_tables(cfg.workdir, ev,
                      caption=f"Ranking methods vs fine-tuning, {cfg.target}")
  report.write_report(cfg.workdir, ev, figure_paths,
                      title=title or f"Source ranking for {cfg.target}",
                      notes=[f"- {n}" for n in notes], lead=lead)


def run_study(cfg: StudyConfig, *, fractions: tuple[float, ...] = (),
              title: str | None = None) -> StudyResult:
  """Ground truth, rankings, evaluation and the output stages for an existing
  zoo (each computing stage resumable); returns the typed result."""
  tio.check_output_dir(cfg.workdir)
  zoo = open_zoo(cfg.zoo_dir)
  target = load_target_for_zoo(cfg.target, zoo, None)
  t0 = time.time()
  gt_runs = _ground_truth_runs(cfg, zoo, target)
  gt = _stack_ground_truth(gt_runs)
  _write_ground_truth(cfg, zoo, gt)
  t1 = time.time()
  score_runs = _score_runs(cfg, zoo, target)
  t2 = time.time()
  ev = evaluate(cfg, zoo, gt, _stack_scores(score_runs, cfg.methods))
  result = _assemble(cfg, [t.task_id for t in zoo.tasks], gt_runs, score_runs, ev)
  paths = figures(result, zoo, target)
  if fractions:
    primary = _primary(cfg, result.mean_scores)
    rows = fraction_curve(cfg, zoo, target, fractions, primary)["rows"]
    paths.append(fraction_figure(result, rows))
    ev = {**ev, "fraction_curve": rows}
  result = dataclasses.replace(result, evaluation=ev)
  write_report(result, zoo, paths, title)
  ev = {**ev, "seconds": {"ground_truth": round(t1 - t0, 1),
                          "rankings": round(t2 - t1, 1),
                          "evaluation": round(time.time() - t2, 1)},
        "provenance": provenance(cfg)}
  if jax.process_index() == 0:
    tio.write_json(os.path.join(cfg.workdir, "evaluation.json"), ev)
  return dataclasses.replace(result, evaluation=ev,
                             paths={**result.paths, "figures": paths})


def summary_table(result: StudyResult | dict) -> str:
  """A short plain-text table of the main statistics per method (of a
  ``StudyResult`` or of an ``evaluation.json``'s dict)."""
  ev = result.evaluation if isinstance(result, StudyResult) else result
  ceil = ev.get("ceiling")
  lines = [f"{'method':<20} {'w.tau':>7} {'spearman':>8} {'pearson':>8} "
           f"{'top1':>5} {'top3':>5} {'regret':>7}"]
  if ceil:
    lines.append(f"{'(ceiling)':<20} {ceil.get('weighted_tau', float('nan')):>7.3f} "
                 f"{ceil.get('spearman', float('nan')):>8.3f} "
                 f"{ceil.get('pearson', float('nan')):>8.3f}")
  else:
    lines.append(f"{'(ceiling)':<20} undefined: needs >= 2 runs per source "
                 "(--num_splits x --num_seeds >= 2)")
  for m, s in ev["methods"].items():
    lines.append(f"{m:<20} {s['weighted_tau']:>7.3f} {s['spearman']:>8.3f} "
                 f"{s['pearson']:>8.3f} {s['top1_hit']:>5.2f} {s['top3_hit']:>5.2f} "
                 f"{s['regret']:>7.4f}")
  nt = ev.get("no_transfer") or {}
  sd = nt.get("sd")
  sd = (f"+- {sd:.4f}" if sd is not None and np.isfinite(sd)
        else "(one run: sd undefined)")
  degenerate = {True: "yes (sources not distinguishable above noise)",
                False: "no", None: "not assessed (needs >= 2 runs per source)"}
  lines.append(f"no-transfer {ev.get('ground_truth_metric', 'AUC')} "
               f"{nt.get('mean', float('nan')):.4f} {sd}; sources "
               f"{ev['truth_spread']['min']:.4f}..{ev['truth_spread']['max']:.4f}; "
               f"negative-transfer sources: "
               f"{next(iter(ev['methods'].values())).get('num_negative', 'n/a')}; "
               f"ground truth degenerate: {degenerate[ev.get('degenerate')]}")
  if ev.get("diagnostic"):
    from transferjax.evaluation import diagnostic
    lines.append(diagnostic.format_line(ev["diagnostic"],
                                        ev.get("ground_truth_metric", "AUC")))
  if ev.get("answer"):
    lines.append(ev["answer"].replace("**", ""))
  return "\n".join(lines)
