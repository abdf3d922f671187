"""``run`` of ``python -m experiments.select``: choose k sources, judge the set.

Per split, the greedy set (k picks, and the set the stopping rule keeps), the
top-k by single-source score and the top-1 source are judged by two set ground
truths (``set_truth``): the ensemble of fine-tuned sources and a fresh head on
the concatenated frozen features. The truth of every k-subset is the mean test
score over splits and seeds (AUC for a binary target, top-1 accuracy for a
multi-class one; the ``*_auc`` keys keep their name for either), so the oracle is the best subset of the pool
(exhaustive search), "random k" is the mean over all k-subsets, and regret is
oracle minus the chosen set's truth.
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from transferjax.provenance import provenance
from transferjax import io as tio
from transferjax.evaluation.diagnostic import format_line
from transferjax.evaluation.report import leaderboard_markdown
from transferjax.selection import engine
from transferjax.selection import multi_source as ms

KINDS = {"ens": "ensemble of fine-tuned sources (averaged logits)",
         "head": "fresh linear softmax head on concatenated frozen features"}
METHODS = ("greedy", "greedy_stop", "top_k", "top_1")


def _tables(st: engine.Setting, sets: list, kind: str) -> dict:
  """``{k: (subsets [m, k], truth [m])}``: score averaged over seeds and splits."""
  out = {}
  for key in sets[0]:
    if key.startswith(f"{kind}_k"):
      k = int(key.split("_k")[1])
      out[k] = (ms.all_subsets(st.q, k),
                np.mean([np.asarray(d[key]).mean(-1) for d in sets], axis=0))
  return out


def _truth_fn(tables: dict):
  index = {k: ms.subset_index(subs) for k, (subs, _) in tables.items()}
  return lambda s: float(tables[len(s)][1][index[len(s)][tuple(sorted(int(i) for i in s))]])


def _picks(scores: dict, k: int) -> dict:
  g = scores["greedy"]
  keep = max(1, min(k, int(g["num_significant"])))
  return {"greedy": g["selected"][:k], "greedy_stop": g["selected"][:keep],
          "top_k": ms.top_k(np.asarray(scores["single"]), k),
          "top_1": ms.top_k(np.asarray(scores["single"]), 1)}


def evaluate(st: engine.Setting, scores: list, sets: list) -> dict:
  """Per (truth kind, k, split, method): the set, its truth, regret, rank."""
  q = st.q
  ids = [t.task_id for t in st.zoo.tasks]
  rows, summary = [], []
  for kind in KINDS:
    tables = _tables(st, sets, kind)
    truth = _truth_fn(tables)
    single = tables[1][1]
    for k in sorted(kk for kk in tables if kk > 1):
      subs, table = tables[k]
      per_method = {m: [] for m in METHODS}
      for sc in scores:
        cmp = ms.compare_sets(truth, subs, table, single, _picks(sc, k))
        for m, r in cmp["methods"].items():
          rows.append({"truth": kind, "k": k, "split": sc["split"], "method": m,
                       "set": " ".join(str(ids[i]) for i in r["set"]),
                       "size": len(r["set"]), "auc": r["truth"],
                       "regret": r["regret"], "rank_of_set": r["rank_of_set"]})
          per_method[m].append(r)
      summary.append({
          "truth": kind, "k": k, "oracle": cmp["oracle"],
          "oracle_set": " ".join(str(ids[i]) for i in cmp["oracle_set"]),
          "best_single": cmp["best_single"], "random_k": cmp["random_mean"],
          **{f"{m}_auc": float(np.mean([r["truth"] for r in v]))
             for m, v in per_method.items()},
          **{f"{m}_regret": float(np.mean([r["regret"] for r in v]))
             for m, v in per_method.items()},
          "greedy_vs_topk_wins": int(sum(a["truth"] > b["truth"] for a, b in
                                         zip(per_method["greedy"], per_method["top_k"]))),
          "greedy_same_as_topk": int(sum(sorted(a["set"]) == sorted(b["set"]) for a, b
                                         in zip(per_method["greedy"], per_method["top_k"]))),
          "num_subsets": cmp["num_subsets"], "num_splits": len(scores)})
  return {"rows": rows, "summary": summary, "pool": ids, "q": q}


def plot(ev: dict, path: str, title: str, metric: str = "auc") -> str:
  """Bars per truth kind and k: oracle, greedy, top-k, best single, random."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  summ = ev["summary"]
  fig, axes = plt.subplots(1, len(KINDS), figsize=(5.5 * len(KINDS), 3.8))
  bars = [("oracle", "oracle subset"), ("greedy_auc", "greedy"),
          ("greedy_stop_auc", "greedy (stopped)"), ("top_k_auc", "top-k single"),
          ("top_1_auc", "top-1 single"), ("best_single", "best single (oracle)"),
          ("random_k", "random k (mean)")]
  for ax, kind in zip(np.atleast_1d(axes), KINDS):
    rows = [r for r in summ if r["truth"] == kind]
    width = 0.8 / len(bars)
    for j, (key, label) in enumerate(bars):
      ax.bar(np.arange(len(rows)) + j * width, [r[key] for r in rows], width,
             label=label)
    ax.set_xticks(np.arange(len(rows)) + 0.4 - width / 2)
    ax.set_xticklabels([f"k={r['k']}" for r in rows])
    vals = [r[key] for r in rows for key, _ in bars]
    lo, hi = min(vals), max(vals)
    ax.set_ylim(lo - 0.3 * (hi - lo + 1e-3), hi + 0.1 * (hi - lo + 1e-3))
    ax.set_ylabel(f"test {metric} (mean over splits, seeds)")
    ax.set_title(KINDS[kind], fontsize=9)
  np.atleast_1d(axes)[-1].legend(fontsize=7, loc="upper left",
                                 bbox_to_anchor=(1.02, 1.0))
  fig.suptitle(title, fontsize=10)
  tio.save_figure(fig, path)
  return path


def write_summary(out: str) -> str:
  """``<out>/summary.md``: every setting's table found under ``out``."""
  parts = ["# Several sources: greedy conditional-gain selection vs baselines\n",
           "Test score of the chosen set (`metric`: AUC for binary targets, top-1 "
           "accuracy for multi-class ones; mean over splits); regret = oracle "
           "subset - set. "
           "Per-setting details in each folder's report.md.\n"]
  rows = engine.setting_rows(out, "select.json", "summary")
  # Settings run before multi-class targets were supported are binary (AUC).
  rows = [{"metric": "auc", **r} for r in rows]
  cols = ["setting", "metric", "truth", "k", "oracle", "greedy_auc", "greedy_stop_auc",
          "top_k_auc", "top_1_auc", "best_single", "random_k", "greedy_regret",
          "top_k_regret", "greedy_vs_topk_wins", "num_splits"]
  parts.append(leaderboard_markdown(rows, cols, float_fmt="{:.4f}") if rows else "")
  path = os.path.join(out, "summary.md")
  tio.write_text(path, "\n".join(parts))
  return path


def _labeled(cfg: engine.SettingConfig) -> str:
  if cfg.shots_per_class:
    return f"{cfg.shots_per_class} per class"
  return str(cfg.num_labeled or cfg.fraction)


def run(cfg: engine.SettingConfig, out: str) -> dict:
  """All stages for one setting; writes ``<out>/<setting>/`` and the summary."""
  t0 = time.time()
  st = engine.load_setting(cfg)
  splits = range(cfg.num_splits)
  ft = [engine.finetune_stage(st, s, 2) for s in splits]
  scores = [engine.scoring_stage(st, s) for s in splits]
  sets = [engine.set_truth_stage(st, s, ft[s]) for s in splits]
  ev = evaluate(st, scores, sets)
  for r in ev["summary"]:
    r["metric"] = st.metric
  diag = engine.diagnostic(ft)
  folder = os.path.join(out, cfg.name)
  no_transfer = float(np.mean([d["no_transfer"] for d in ft]))
  greedy = [{"split": sc["split"], "selected": [ev["pool"][i] for i in
                                                 sc["greedy"]["selected"]],
             "gains": sc["greedy"]["gains"],
             "null_quantiles": sc["greedy"]["null_quantiles"],
             "num_significant": sc["greedy"]["num_significant"],
             "scoring_set_size": sc["scoring_set_size"]} for sc in scores]
  result = {"setting": cfg.name, "config": dataclasses.asdict(cfg),
            "metric": st.metric, "no_transfer_auc": no_transfer,
            "diagnostic": diag, "summary": ev["summary"],
            "rows": ev["rows"], "greedy": greedy, "pool": ev["pool"],
            "seconds": round(time.time() - t0, 1)}
  tio.write_json(os.path.join(folder, "select.json"), {**result, "provenance": provenance()})
  tio.write_csv(os.path.join(folder, "select.csv"), ev["rows"])
  fig = plot(ev, os.path.join(folder, "select.png"),
             f"{cfg.name}: sets of sources (no transfer {no_transfer:.3f})", st.metric)
  md = [f"# Several sources: {cfg.name}\n",
        f"Zoo `{cfg.zoo}` ({st.q} sources), target `{cfg.target}`, "
        f"D_a = {_labeled(cfg)}, {cfg.num_splits} splits x "
        f"{cfg.num_seeds} seeds; ground truth: test {st.metric}; no transfer "
        f"{no_transfer:.4f}.\n",
        "Single sources, every conv layer transferred: "
        + format_line(diag, st.metric) + ".\n",
        "Truth: " + "; ".join(f"`{k}` = {v}" for k, v in KINDS.items()) + ".\n",
        leaderboard_markdown(ev["summary"], float_fmt="{:.4f}"),
        "\nGreedy selection per split (conditional gains in nats; the stopping "
        f"rule's null quantile {1 - cfg.alpha:.2f}):\n",
        leaderboard_markdown(greedy, float_fmt="{:.4f}"),
        "\nEvery set:\n", leaderboard_markdown(ev["rows"], float_fmt="{:.4f}"),
        f"\n![sets]({os.path.basename(fig)})\n"]
  tio.write_text(os.path.join(folder, "report.md"), "\n".join(md))
  write_summary(out)
  return result
