"""One experiment end to end: zoo -> ground truth -> rankings -> evaluation.

Steps, each resumable on its own (a finished split is a file, skipped on rerun):

1. the zoo (``transferjax.train.zoo.run``, resumable per chunk);
2. per target split ``s``: fine-tune every source x seed and the no-transfer net
   (``transfer/split_{s}.json``; while it runs, finished chunks of 64 models are
   kept in ``transfer/split_{s}_chunks/``, so a killed run resumes mid-split);
3. per target split ``s``: score every source with every method
   (``scores/split_{s}.json``);
4. evaluate: ground truth = mean test AUC over seeds and splits, with its
   split-half reliability as the ceiling; every method's rank statistics;
   figures; ``report.md`` and ``evaluation.json``.

Used by ``experiments.transfer``, ``experiments.evaluate``, ``experiments.paper``
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

from transferjax import io as tio
from transferjax.data import paper_split, split_sizes_report
from transferjax.errors import CheckpointError, ConfigError
from transferjax.scoring.job import load_target_for_zoo, open_zoo
from transferjax.scoring.methods import DEFAULT_EVAL_METHODS, METHODS, RankConfig
from transferjax.scoring.rank import RankJob, score_zoo
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
    num_splits: target splits (seeds 0..num_splits-1) the ground truth averages.
    num_seeds: fine-tuning seeds per source and split.
    finetune: fine-tuning config (early stopping, budgets, frozen conv).
    job: ranking protocol, folds and the ranking-method config.
    methods: the ranking methods to evaluate (``"rbm"`` included).
    rbm_hidden, rbm_epochs: the RBM baseline's size and training length.
    seed: root seed of fine-tuning and RBMs.
  """
  workdir: str
  zoo_dir: str
  target: str = "mnist:4,9"
  fraction: float = 0.05
  num_labeled: int | None = None
  num_splits: int = 3
  num_seeds: int = 3
  finetune: FitConfig = FitConfig()
  job: RankJob = RankJob()
  methods: tuple[str, ...] = DEFAULT_EVAL_METHODS + ("rbm",)
  rbm_hidden: int = 64
  rbm_epochs: int = 5
  seed: int = 0

  def __post_init__(self):
    unknown = [m for m in self.methods if m not in METHODS and m != "rbm"]
    if unknown:
      raise ConfigError(f"Unknown ranking method(s) {unknown}; choose from "
                        f"{sorted(METHODS) + ['rbm']}.")
    if self.num_splits < 1 or self.num_seeds < 1:
      raise ConfigError("num_splits and num_seeds must be >= 1.")


def _split(cfg: StudyConfig, target, s: int):
  return paper_split(target, fraction=cfg.fraction, num_labeled=cfg.num_labeled,
                     seed=s)


def _fingerprint(target) -> str:
  """Hash of the target's pixels and labels: a changed loader default (e.g. the
  spots difficulty) must not silently reuse results made from other data."""
  h = hashlib.sha256(np.ascontiguousarray(target.images).tobytes())
  h.update(np.ascontiguousarray(target.labels).tobytes())
  return h.hexdigest()[:16]


def _signature(cfg: StudyConfig, target) -> dict:
  """What a finished split file must agree with to be reused."""
  return {"target": cfg.target, "target_data": _fingerprint(target),
          "fraction": cfg.fraction,
          "num_labeled": cfg.num_labeled, "num_seeds": cfg.num_seeds,
          "finetune": dataclasses.asdict(cfg.finetune), "seed": cfg.seed,
          "zoo": os.path.abspath(cfg.zoo_dir)}


def _reuse(path: str, signature: dict) -> dict | None:
  if not os.path.exists(path):
    return None
  data = tio.read_json(path)
  stored = data.get("signature", {})
  diff = [k for k in signature if stored.get(k) != tio._to_jsonable(signature[k])]
  if diff:
    raise CheckpointError(
        f"{path} was made with different settings ({', '.join(diff)}); use a new "
        "--workdir or the same flags.")
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


def ground_truth(cfg: StudyConfig, zoo, target) -> dict:
  """Fine-tunes every source on every split (resumable per split).

  Returns:
    ``{"auc": [q, seeds, splits], "no_transfer": [seeds, splits], "epochs": ...,
    "budget_auc": {epoch: [q, seeds, splits]}, "budget_no_transfer": ...}``.
  """
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
                           chunk_dir=chunk_dir)
    print(f"split {s}: fine-tuned {out.auc.size + out.no_transfer.size} models in "
          f"{time.time() - t0:.0f}s; no-transfer AUC {out.no_transfer.mean():.4f}, "
          f"sources {out.auc.mean(1).min():.4f}..{out.auc.mean(1).max():.4f}",
          flush=True)
    return {"split": s, "sizes": split.sizes(),
            "auc": out.auc, "no_transfer": out.no_transfer, "epochs": out.epochs,
            "no_transfer_epochs": out.no_transfer_epochs,
            "budget_auc": {str(b): v for b, v in out.budget_auc.items()},
            "budget_no_transfer": {str(b): v for b, v in out.budget_no_transfer.items()},
            "seconds": round(time.time() - t0, 1)}

  runs = [_cached(os.path.join(cfg.workdir, "transfer", f"split_{s}.json"), sig,
                  lambda s=s: fine_tune(s)) for s in range(cfg.num_splits)]
  stack = lambda key: np.stack([np.asarray(r[key], np.float64) for r in runs], -1)
  budgets = sorted(runs[0]["budget_auc"], key=int)
  result = {"auc": stack("auc"), "no_transfer": stack("no_transfer"),
            "epochs": stack("epochs"), "sizes": runs[0]["sizes"],
            "budget_auc": {b: np.stack([np.asarray(r["budget_auc"][b]) for r in runs], -1)
                           for b in budgets},
            "budget_no_transfer": {
                b: np.stack([np.asarray(r["budget_no_transfer"][b]) for r in runs], -1)
                for b in budgets}}
  rows = []
  for i, task in enumerate(zoo.tasks):
    rows.append({"source_id": task.task_id, "pool": task.pool,
                 "num_classes": task.num_classes,
                 "auc_mean": result["auc"][i].mean(), "auc_sd": result["auc"][i].std(ddof=1)
                 if result["auc"][i].size > 1 else 0.0,
                 "epochs_mean": result["epochs"][i].mean(),
                 **{f"auc_{b}ep": result["budget_auc"][b][i].mean() for b in budgets}})
  if jax.process_index() == 0:
    tio.write_csv(os.path.join(cfg.workdir, "transfer.csv"), rows)
    tio.write_json(os.path.join(cfg.workdir, "transfer.json"),
                   {"target": cfg.target, "sources": rows,
                    "no_transfer": {"mean": result["no_transfer"].mean(),
                                    "sd": result["no_transfer"].std(ddof=1)
                                    if result["no_transfer"].size > 1 else 0.0},
                    "auc": result["auc"], "no_transfer_runs": result["no_transfer"]})
  return result


def _rbm_params(cfg: StudyConfig, zoo) -> Any:
  """One RBM per source task on its own source images (cached as .npz)."""
  from transferjax.baselines import rbm as rbm_lib
  from transferjax.data import load_dataset
  from transferjax.transfer.fit import pad_index_sets
  path = os.path.join(cfg.workdir, "rbm.npz")
  if os.path.exists(path):
    return tio.load_npz(path)
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


def rankings(cfg: StudyConfig, zoo, target) -> dict:
  """Scores of every method on every split (resumable per split).

  Returns:
    ``{method: [q, splits]}``.
  """
  sig = {**_signature(cfg, target), "job": dataclasses.asdict(cfg.job),
         "methods": list(cfg.methods)}
  rbm = _rbm_params(cfg, zoo) if "rbm" in cfg.methods else None
  def score(s):
    t0 = time.time()
    split = _split(cfg, target, s)
    job = dataclasses.replace(cfg.job, rank=dataclasses.replace(
        cfg.job.rank, seed=cfg.job.rank.seed + s))
    methods = tuple(m for m in cfg.methods if m != "rbm")
    scores, _, scoring = score_zoo(zoo, split, job, methods=methods)
    if rbm is not None:
      from transferjax.baselines import rbm as rbm_lib
      scores["rbm"] = np.asarray(rbm_lib.rbm_scores(
          {k: jax.numpy.asarray(v) for k, v in rbm.items()}, split.train.images))
    print(f"split {s}: scored {len(zoo.tasks)} sources with {len(scores)} methods "
          f"in {time.time() - t0:.0f}s", flush=True)
    return {"split": s, "scoring_set_size": len(scoring.labels),
            "scores": {m: np.asarray(v, np.float64) for m, v in scores.items()},
            "seconds": round(time.time() - t0, 1)}

  per_split = [_cached(os.path.join(cfg.workdir, "scores", f"split_{s}.json"), sig,
                       lambda s=s: score(s)) for s in range(cfg.num_splits)]
  return {m: np.stack([np.asarray(d["scores"][m], np.float64) for d in per_split], -1)
          for m in cfg.methods}


def _per_split(scores: dict, truth: np.ndarray) -> dict:
  """Each split's ranking against the overall ground truth: a practitioner has
  one split, so the mean and sd over splits say what one ranking is worth."""
  from transferjax.evaluation import stats
  out = {}
  for m, sc in scores.items():
    taus = [stats.rank_statistics(sc[:, s], truth) for s in range(sc.shape[1])]
    out[m] = {key: {"mean": float(np.nanmean([t[key] for t in taus])),
                    "sd": float(np.nanstd([t[key] for t in taus]))}
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
                   "best": out.auc[0].mean(), "best_sd": out.auc[0].std(),
                   "worst": out.auc[1].mean(), "worst_sd": out.auc[1].std(),
                   "none": out.no_transfer.mean(), "none_sd": out.no_transfer.std()})
      print(f"fraction {frac}: best {rows[-1]['best']:.4f} worst {rows[-1]['worst']:.4f} "
            f"none {rows[-1]['none']:.4f}", flush=True)
    return {"rows": rows}

  return _cached(os.path.join(cfg.workdir, "fraction_curve.json"), sig, curve)


def evaluate(cfg: StudyConfig, zoo, target, gt: dict, scores: dict, *,
             fractions: tuple[float, ...] = (), title: str | None = None) -> dict:
  """Rank statistics, reliability ceiling, figures; writes report.md/evaluation.json."""
  from transferjax.evaluation import figures as figs
  from transferjax.evaluation import report, stats
  from transferjax.train import zoo as zoo_lib
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
  ev["target"] = cfg.target
  ev["split_sizes"] = gt["sizes"]
  ev["num_splits"], ev["num_seeds"] = cfg.num_splits, cfg.num_seeds
  ev["truth_spread"] = {"min": float(truth.min()), "max": float(truth.max())}

  fig_dir = os.path.join(cfg.workdir, "figures")
  paths = [figs.plot_score_vs_auc(
      mean_scores, truth, float(np.mean(gt["no_transfer"])),
      os.path.join(fig_dir, "fig6_score_vs_auc.png"),
      auc_err=gt["auc"].reshape(len(truth), -1).std(1),
      title=f"{cfg.target}: ranking score vs AUC after transfer")]
  names, taus = stats.subpool_table(mean_scores, truth,
                                    pool_size=min(10, len(truth) - 1), num_pools=100,
                                    seed=cfg.seed)
  paths.append(figs.plot_tau_distributions(
      {n: taus[:, j] for j, n in enumerate(names)},
      os.path.join(fig_dir, "tau_subpools.png"),
      ceiling=(ev["ceiling"] or {}).get("weighted_tau") if ev["ceiling"] else None))
  primary = cfg.job.rank.method if cfg.job.rank.method in mean_scores else names[0]
  order = np.argsort(-mean_scores[primary], kind="stable")
  test = _split(cfg, target, 0).test
  rows = np.random.default_rng(0).permutation(test.num_examples)[:600]
  pick = [int(order[0]), int(order[-1])]
  feats = zoo_lib.zoo_features(jax.tree.map(lambda a: np.asarray(a)[pick], zoo.params),
                               zoo.arch, test.images[rows])
  paths.append(figs.plot_features_3d(
      feats[0], feats[1], test.labels[rows], os.path.join(fig_dir, "fig7_features.png"),
      names=(f"best-ranked by {primary} (source {zoo.tasks[pick[0]].task_id})",
             f"worst-ranked (source {zoo.tasks[pick[1]].task_id})"),
      class_names=test.class_names))
  if fractions:
    curve = fraction_curve(cfg, zoo, target, fractions, primary)
    r = curve["rows"]
    col = lambda k: [row[k] for row in r]
    paths.append(figs.plot_auc_vs_fraction(
        col("fraction"), col("best"), col("worst"), col("none"),
        os.path.join(fig_dir, "fig8_auc_vs_fraction.png"), best_sd=col("best_sd"),
        worst_sd=col("worst_sd"), none_sd=col("none_sd")))
    ev["fraction_curve"] = r
  notes = [
      f"Target {cfg.target}; D_a = {cfg.num_labeled or cfg.fraction} "
      f"(sizes of split 0: {gt['sizes']}); {cfg.num_splits} splits x "
      f"{cfg.num_seeds} fine-tuning seeds; ranking protocol {cfg.job.protocol}.",
      "Scores are averaged over splits before the statistics; `per_split` in "
      "evaluation.json gives each single split's ranking against the same truth.",
      "The ceiling is the split-half rank agreement of the ground truth with itself.",
  ]
  if ev.get("degenerate"):
    notes.append("WARNING: this ground truth is degenerate (spread across sources "
                 "not above seed/split noise); no ranking can be judged here.")
  for b, e in ev["budgets"].items():
    notes.append(f"Fixed budget {b} (no early stopping): ceiling "
                 f"{(e['ceiling'] or {}).get('spearman', float('nan')):.3f} (Spearman); "
                 + ", ".join(f"{m} Spearman {v['spearman']:.3f}"
                             for m, v in e["methods"].items()))
  report.write_report(cfg.workdir, ev, paths,
                      title=title or f"Source ranking for {cfg.target}", notes=notes)
  return ev


def run_study(cfg: StudyConfig, *, fractions: tuple[float, ...] = (),
              title: str | None = None) -> dict:
  """Ground truth, rankings and evaluation for an existing zoo."""
  zoo = open_zoo(cfg.zoo_dir)
  target = load_target_for_zoo(cfg.target, zoo, None)
  t0 = time.time()
  gt = ground_truth(cfg, zoo, target)
  t1 = time.time()
  scores = rankings(cfg, zoo, target)
  t2 = time.time()
  ev = evaluate(cfg, zoo, target, gt, scores, fractions=fractions, title=title)
  ev["seconds"] = {"ground_truth": round(t1 - t0, 1), "rankings": round(t2 - t1, 1),
                   "evaluation": round(time.time() - t2, 1)}
  if jax.process_index() == 0:
    tio.write_json(os.path.join(cfg.workdir, "evaluation.json"), ev)
  return ev


def summary_table(ev: dict) -> str:
  """A short plain-text table of the main statistics per method."""
  ceil = ev.get("ceiling") or {}
  lines = [f"{'method':<20} {'w.tau':>7} {'spearman':>8} {'pearson':>8} "
           f"{'top1':>5} {'top3':>5} {'regret':>7}",
           f"{'(ceiling)':<20} {ceil.get('weighted_tau', float('nan')):>7.3f} "
           f"{ceil.get('spearman', float('nan')):>8.3f} "
           f"{ceil.get('pearson', float('nan')):>8.3f}"]
  for m, s in ev["methods"].items():
    lines.append(f"{m:<20} {s['weighted_tau']:>7.3f} {s['spearman']:>8.3f} "
                 f"{s['pearson']:>8.3f} {s['top1_hit']:>5.2f} {s['top3_hit']:>5.2f} "
                 f"{s['regret']:>7.4f}")
  nt = ev.get("no_transfer") or {}
  lines.append(f"no-transfer AUC {nt.get('mean', float('nan')):.4f} +- "
               f"{nt.get('sd', float('nan')):.4f}; sources "
               f"{ev['truth_spread']['min']:.4f}..{ev['truth_spread']['max']:.4f}; "
               f"negative-transfer sources: "
               f"{next(iter(ev['methods'].values())).get('num_negative', 'n/a')}; "
               f"degenerate: {ev.get('degenerate')}")
  return "\n".join(lines)
