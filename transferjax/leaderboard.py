"""Stability-aware benchmark of ranking methods over several targets and zoos.

For each zoo and each target (a *setting*), ``study.run_study`` gives the
fine-tuning ground truth (mean over seeds x splits) and every method's scores.
The leaderboard then aggregates, per method:

* weighted Kendall tau per setting, and its mean/sd over settings;
* over random sub-pools of each zoo (e.g. 100 pools of 10 sources): the mean and
  sd of weighted tau (Agostinelli et al., ECCV 2022: a ranking judged on one
  pool is an anecdote);
* the Setup Stability score: do the methods keep their order when the target
  (varying) changes, with zoo and sub-pool fixed?
* the leave-one-target-out prior (a source's mean ground truth on the *other*
  targets of the same zoo), the baseline that beats published metrics on the
  standard model-selection benchmarks, as a method.
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from transferjax.provenance import provenance
from transferjax import io as tio
from transferjax.errors import ConfigError
from transferjax.study import StudyConfig, run_study


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
  """Zoos x targets.

  Attributes:
    workdir: output folder (one study per setting under ``<zoo>/<target>``).
    zoos: ``{name: zoo_dir}`` of trained zoos.
    targets: target specs ranked with every zoo (image sizes must match).
    study: template study config (``workdir``/``zoo_dir``/``target`` replaced).
    pool_size, num_pools: the sub-pool analysis.
  """
  workdir: str
  zoos: dict
  targets: tuple[str, ...]
  study: StudyConfig
  pool_size: int = 10
  num_pools: int = 100


def _slug(text: str) -> str:
  return text.replace(":", "_").replace(",", "-").replace("/", "_")


def run_benchmark(cfg: BenchmarkConfig) -> dict:
  """Runs (or resumes) every setting and writes the leaderboard."""
  from transferjax.evaluation import figures as figs
  from transferjax.evaluation import report, stats
  from transferjax.metrics import loo_prior
  if not cfg.zoos or not cfg.targets:
    raise ConfigError("The benchmark needs at least one zoo and one target.")
  tio.check_output_dir(cfg.workdir)
  t0 = time.time()
  settings = []   # (zoo, target, truth [q], scores {m: [q]})
  for zoo_name, zoo_dir in cfg.zoos.items():
    for target in cfg.targets:
      sc = dataclasses.replace(cfg.study, workdir=os.path.join(
          cfg.workdir, zoo_name, _slug(target)), zoo_dir=zoo_dir, target=target)
      print(f"== setting: zoo {zoo_name}, target {target}", flush=True)
      result = run_study(sc)
      settings.append({"zoo": zoo_name, "target": target, "truth": result.truth,
                       "scores": result.mean_scores,
                       "ceiling": result.evaluation.get("ceiling"),
                       "degenerate": result.evaluation.get("degenerate")})
  # The leave-one-target-out prior within each zoo.
  for zoo_name in cfg.zoos:
    group = [s for s in settings if s["zoo"] == zoo_name]
    if len(group) >= 2:
      table = np.stack([s["truth"] for s in group])
      for i, s in enumerate(group):
        s["scores"]["loo_prior"] = loo_prior(table, i)
  methods = sorted(set.intersection(*(set(s["scores"]) for s in settings)))
  records, per_method_taus, rows = [], {m: [] for m in methods}, []
  for s in settings:
    q = len(s["truth"])
    pool = min(cfg.pool_size, q - 1)
    idx = stats.subpool_indices(q, pool, cfg.num_pools, seed=0)
    for m in methods:
      full = stats.rank_statistics(s["scores"][m], s["truth"])
      taus = np.array([stats.rank_statistics(s["scores"][m][ix], s["truth"][ix])
                       ["weighted_tau"] for ix in idx])
      per_method_taus[m].extend(taus[np.isfinite(taus)].tolist())
      for p, tau in enumerate(taus):
        records.append({"zoo": s["zoo"], "pool": p, "target": s["target"],
                        "metric": m, "score": tau})
      rows.append({"zoo": s["zoo"], "target": s["target"], "method": m,
                   "weighted_tau": full["weighted_tau"], "spearman": full["spearman"],
                   "top1_hit": full["top1_hit"], "regret": full["regret"],
                   "subpool_tau_mean": float(np.nanmean(taus)),
                   "subpool_tau_sd": float(np.nanstd(taus)),
                   "ceiling_weighted_tau": (s["ceiling"] or {}).get("weighted_tau"),
                   "degenerate": s["degenerate"]})
  # Setup stability: vary the target, fix (zoo, sub-pool); a method with an
  # undefined tau somewhere is left out (it would make every pair undefined).
  finite = [m for m in methods
            if all(np.isfinite(r["score"]) for r in records if r["metric"] == m)]
  ss = (stats.setup_stability_score_from_records(
      [r for r in records if r["metric"] in finite], varying="target",
      fixing=("zoo", "pool")) if len(cfg.targets) >= 2 and len(finite) >= 2
        else float("nan"))
  board = []
  for m in methods:
    mine = [r for r in rows if r["method"] == m]
    board.append({"method": m,
                  "weighted_tau_mean": float(np.nanmean([r["weighted_tau"] for r in mine])),
                  "weighted_tau_sd": float(np.nanstd([r["weighted_tau"] for r in mine])),
                  "spearman_mean": float(np.nanmean([r["spearman"] for r in mine])),
                  "subpool_tau_mean": float(np.nanmean(per_method_taus[m])),
                  "subpool_tau_sd": float(np.nanstd(per_method_taus[m])),
                  "top1_hit_mean": float(np.nanmean([r["top1_hit"] for r in mine])),
                  "regret_mean": float(np.nanmean([r["regret"] for r in mine])),
                  "settings": len(mine)})
  board.sort(key=lambda r: -np.nan_to_num(r["subpool_tau_mean"], nan=-9))
  os.makedirs(cfg.workdir, exist_ok=True)
  tio.write_csv(os.path.join(cfg.workdir, "leaderboard.csv"), board)
  tio.write_csv(os.path.join(cfg.workdir, "settings.csv"), rows)
  fig = figs.plot_tau_distributions(
      {m: np.asarray(per_method_taus[m]) for m in [b["method"] for b in board]},
      os.path.join(cfg.workdir, "tau_distributions.png"))
  ceilings = [(s["zoo"], s["target"], (s["ceiling"] or {}).get("weighted_tau"),
               s["degenerate"]) for s in settings]
  md = [f"# Transferability leaderboard\n",
        f"{len(settings)} settings (zoos {list(cfg.zoos)} x targets "
        f"{list(cfg.targets)}); sub-pools: {cfg.num_pools} x {cfg.pool_size} sources. "
        f"Setup Stability (vary target, fix zoo and sub-pool): **{ss:.3f}** "
        f"(methods: {', '.join(finite)}).\n",
        report.leaderboard_markdown(board),
        "\n## Ground-truth ceilings per setting\n",
        report.leaderboard_markdown([{"zoo": z, "target": t, "ceiling_weighted_tau": c,
                                      "degenerate": d} for z, t, c, d in ceilings]),
        "\n## Per setting\n", report.leaderboard_markdown(rows),
        f"\n![weighted tau over sub-pools and settings](tau_distributions.png)\n"]
  md += report.reproduce_markdown(provenance(cfg), os.path.join(cfg.workdir,
                                                                "benchmark.json"))
  tio.write_text(os.path.join(cfg.workdir, "leaderboard.md"), "\n".join(md))
  result = {"leaderboard": board, "settings": rows, "setup_stability": ss,
            "setup_stability_methods": finite, "seconds": round(time.time() - t0, 1),
            "figure": fig}
  result["provenance"] = provenance(cfg)
  tio.write_json(os.path.join(cfg.workdir, "benchmark.json"), result)
  return result
