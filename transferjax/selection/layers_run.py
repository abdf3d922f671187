"""``run`` of ``python -m experiments.layers``: how many layers to transfer.

Each (source i, depth l) pair is scored by ``I(Y; F_i^l | T)`` on the features
after layer l (``layers.depth_features``) and judged by fine-tuning with the
first l layers transferred and the rest fresh (mean test score over splits and
seeds: AUC for a binary target, top-1 accuracy for a multi-class one; the
``*_auc`` keys keep their name for either). Reported per split and for the scores averaged over splits: whether
the top-scored pair is the best pair, the Spearman correlation over all pairs,
and the gain of the chosen pair over the paper's choice (the top source by
the usual penultimate-feature score, every conv layer transferred); plus, per
source, choosing its depth by score vs always transferring every conv layer.
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
from scipy import stats as sps

from transferjax.provenance import provenance
from transferjax import io as tio
from transferjax.evaluation.diagnostic import format_line
from transferjax.evaluation.report import leaderboard_markdown
from transferjax.selection import engine
from transferjax.selection.layers import DEPTHS

PAPER_DEPTH = DEPTHS.index("conv2")   # every conv layer transferred


def judge(score: np.ndarray, truth: np.ndarray, single: np.ndarray) -> dict:
  """Statistics of one ``[q, L]`` score matrix against the ``[q, L]`` truth.

  ``single`` ``[q]`` is the usual source score (penultimate features): the
  paper's choice is its top source at ``PAPER_DEPTH``.
  """
  q, num_depths = truth.shape
  top = np.unravel_index(int(np.argmax(score)), score.shape)
  best = np.unravel_index(int(np.argmax(truth)), truth.shape)
  paper_src = int(np.argmax(single))
  rho = sps.spearmanr(score.ravel(), truth.ravel())[0]
  chosen_depth = np.argmax(score, axis=1)
  within = [sps.spearmanr(score[i], truth[i])[0] for i in range(q)]
  return {
      "top_pair": [int(top[0]), DEPTHS[top[1]]], "top_pair_auc": float(truth[top]),
      "best_pair": [int(best[0]), DEPTHS[best[1]]], "best_pair_auc": float(truth[best]),
      "top_is_best": bool(top == best),
      "top_pair_rank": int(1 + np.sum(truth > truth[top])),
      "spearman_all_pairs": float(rho),
      "paper_choice_auc": float(truth[paper_src, PAPER_DEPTH]),
      "gain_over_paper": float(truth[top] - truth[paper_src, PAPER_DEPTH]),
      "per_source_depth_by_score": float(np.mean(truth[np.arange(q), chosen_depth])),
      "per_source_all_conv": float(np.mean(truth[:, PAPER_DEPTH])),
      "per_source_best_depth": float(np.mean(truth.max(axis=1))),
      "depth_hit_rate": float(np.mean(chosen_depth == np.argmax(truth, axis=1))),
      "within_source_spearman": float(np.nanmean(within)),
      "chosen_depth_counts": {d: int(np.sum(chosen_depth == j))
                              for j, d in enumerate(DEPTHS)},
  }


def plot(score: np.ndarray, truth: np.ndarray, no_transfer: float, path: str,
         title: str, metric: str = "auc") -> str:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
  for j, d in enumerate(DEPTHS):
    a.scatter(score[:, j], truth[:, j], s=18, label=f"first {j + 1} ({d})")
  a.axhline(no_transfer, color="gray", ls="--", lw=1, label="no transfer")
  a.set_xlabel("I(Y; F^l | T) (nats, mean over splits)")
  a.set_ylabel(f"test {metric}, first l layers transferred")
  a.legend(fontsize=7)
  order = np.argsort(-truth[:, PAPER_DEPTH])
  for j, d in enumerate(DEPTHS):
    b.plot(np.arange(len(order)), truth[order, j], marker="o", ms=3, lw=1,
           label=f"first {j + 1} ({d})")
  b.axhline(no_transfer, color="gray", ls="--", lw=1)
  b.set_xlabel(f"source (sorted by {metric} with every conv layer transferred)")
  b.set_ylabel(f"test {metric}")
  b.legend(fontsize=7)
  fig.suptitle(title, fontsize=10)
  tio.save_figure(fig, path)
  return path


def write_summary(out: str) -> str:
  rows = engine.setting_rows(out, "layers.json", "table")
  # Settings run before multi-class targets were supported are binary (AUC).
  rows = [{"metric": "auc", **r} for r in rows]
  cols = ["setting", "metric", "scores", "top_pair", "top_pair_auc", "best_pair",
          "best_pair_auc", "top_is_best", "top_pair_rank", "spearman_all_pairs",
          "paper_choice_auc", "gain_over_paper", "per_source_depth_by_score",
          "per_source_all_conv", "per_source_best_depth", "depth_hit_rate"]
  text = ("# How many layers to transfer: CMI per depth vs fine-tuning\n\n"
          "Pairs (source, depth); score (`metric`) = mean test score over "
          "splits and seeds. `scores`: one "
          "split's scores, or `mean` (averaged over splits).\n\n"
          + (leaderboard_markdown(rows, cols, float_fmt="{:.4f}") if rows else ""))
  path = os.path.join(out, "summary.md")
  tio.write_text(path, text)
  return path


def run(cfg: engine.SettingConfig, out: str) -> dict:
  """Fine-tunes at every depth, scores every depth; writes ``<out>/<setting>/``."""
  t0 = time.time()
  st = engine.load_setting(cfg)
  splits = range(cfg.num_splits)
  # The paper's depth last: it may be read from a study still running.
  order = sorted(range(len(DEPTHS)), key=lambda l: l == PAPER_DEPTH)
  ft = {l: [engine.finetune_stage(st, s, l + 1) for s in splits] for l in order}
  scores = [engine.scoring_stage(st, s) for s in splits]
  truth = np.stack([np.mean([np.asarray(d["auc"]).mean(-1) for d in ft[l]], axis=0)
                    for l in range(len(DEPTHS))], axis=1)                 # [q, L]
  no_transfer = float(np.mean([d["no_transfer"] for d in ft[PAPER_DEPTH]]))
  mats = [np.stack([np.asarray(sc["depth_scores"][d]) for d in DEPTHS], axis=1)
          for sc in scores]
  singles = [np.asarray(sc["single"]) for sc in scores]
  ids = [t.task_id for t in st.zoo.tasks]
  table = []
  for name, m, sgl in ([(f"split {sc['split']}", mm, s1) for sc, mm, s1 in
                        zip(scores, mats, singles)]
                       + [("mean", np.mean(mats, axis=0), np.mean(singles, axis=0))]):
    r = judge(m, truth, sgl)
    r["top_pair"] = f"{ids[r['top_pair'][0]]}/{r['top_pair'][1]}"
    r["best_pair"] = f"{ids[r['best_pair'][0]]}/{r['best_pair'][1]}"
    table.append({"scores": name, "metric": st.metric, **r})
  diag = engine.diagnostic(ft[PAPER_DEPTH])
  folder = os.path.join(out, cfg.name)
  mean_scores = np.mean(mats, axis=0)
  pairs = [{"source": ids[i], "depth": d, "layers_transferred": j + 1,
            "score": float(mean_scores[i, j]), "auc": float(truth[i, j])}
           for i in range(st.q) for j, d in enumerate(DEPTHS)]
  result = {"setting": cfg.name, "config": dataclasses.asdict(cfg),
            "metric": st.metric, "no_transfer_auc": no_transfer, "diagnostic": diag,
            "auc_by_depth": {d: float(truth[:, j].mean()) for j, d in enumerate(DEPTHS)},
            "table": table, "pairs": pairs, "seconds": round(time.time() - t0, 1)}
  tio.write_json(os.path.join(folder, "layers.json"), {**result, "provenance": provenance()})
  tio.write_csv(os.path.join(folder, "layers.csv"), pairs)
  fig = plot(mean_scores, truth, no_transfer, os.path.join(folder, "layers.png"),
             f"{cfg.name}: score of the features after layer l vs fine-tuning "
             "with l layers transferred", st.metric)
  md = [f"# How many layers to transfer: {cfg.name}\n",
        f"Zoo `{cfg.zoo}` ({st.q} sources), target `{cfg.target}`, D_a = "
        f"{cfg.shots_per_class or cfg.num_labeled or cfg.fraction}"
        f"{' per class' if cfg.shots_per_class else ''}, {cfg.num_splits} splits x "
        f"{cfg.num_seeds} seeds; ground truth: test {st.metric}; no transfer "
        f"{no_transfer:.4f}; mean {st.metric} by layers transferred: " + ", ".join(
            f"{j + 1} ({d}) {truth[:, j].mean():.4f}" for j, d in enumerate(DEPTHS))
        + ".\n",
        "Single sources, every conv layer transferred: "
        + format_line(diag, st.metric) + ".\n", leaderboard_markdown(table, float_fmt="{:.4f}"),
        "\nEvery pair (scores averaged over splits):\n",
        leaderboard_markdown(pairs, float_fmt="{:.4f}"),
        f"\n![layers]({os.path.basename(fig)})\n"]
  tio.write_text(os.path.join(folder, "report.md"), "\n".join(md))
  write_summary(out)
  return result
