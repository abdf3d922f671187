"""What a report says first: which source to pick, the per-source table, the
definitions of every statistic, and the method table as CSV and LaTeX.

``evaluate_methods`` (report.py) gives the numbers; this module turns them into
text a person acts on. Everything here reads plain dicts and arrays.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from transferjax import io
from transferjax.evaluation import report


def _sd(runs: np.ndarray) -> float:
  """Sample sd (ddof=1); NaN (undefined) with fewer than two runs."""
  runs = np.asarray(runs, np.float64).ravel()
  return float(runs.std(ddof=1)) if runs.size > 1 else float("nan")


def source_rows(source_ids: Sequence[int], num_classes: Sequence[int],
                auc_runs: np.ndarray, scores: np.ndarray, method: str,
                no_transfer: float | None) -> list[dict[str, Any]]:
  """One row per source, ordered by the ranking ``method`` (best first).

  Args:
    source_ids, num_classes: ``[q]`` per source.
    auc_runs: ``[q, ...]`` fine-tuned test AUC per run (seeds x splits).
    scores: ``[q]`` the ranking method's scores.
    method: its name (a column header).
    no_transfer: mean AUC of the from-scratch net (None: no gain column).
  """
  runs = np.asarray(auc_runs, np.float64).reshape(len(scores), -1)
  truth = runs.mean(axis=1)
  true_rank = np.empty(len(truth), int)
  true_rank[np.argsort(-truth, kind="stable")] = np.arange(1, len(truth) + 1)
  rows = []
  for r, i in enumerate(np.argsort(-np.asarray(scores), kind="stable")):
    row = {"rank": r + 1, "source": int(source_ids[i]),
           "classes": int(num_classes[i]), method: float(scores[i]),
           "AUC after transfer": float(truth[i]), "AUC sd": _sd(runs[i]),
           "true rank": int(true_rank[i])}
    if no_transfer is not None:
      row["gain vs scratch"] = float(truth[i] - no_transfer)
    rows.append(row)
  return rows


def answer(ev: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
           method: str) -> str:
  """The report's first paragraph: the recommended source and how sure it is,
  or that no source beats training from scratch here."""
  best_pred = rows[0]
  best_true = min(rows, key=lambda r: r["true rank"])
  nt = (ev.get("no_transfer") or {}).get("mean")
  st = ev["methods"].get(method, {})
  rel = ev.get("reliability") or {}
  noise = rel.get("noise_se")
  # The ground truth's own metric: AUC for binary targets, accuracy for multi-class.
  metric = str(ev.get("ground_truth_metric", "auc"))
  unit = "AUC" if metric.lower() == "auc" else metric
  parts = []
  if nt is not None and best_true["AUC after transfer"] <= nt + (noise or 0.0):
    parts.append(
        f"**No source beats training from scratch here.** The best fine-tuned "
        f"source (source {best_true['source']}) reaches {unit} "
        f"{best_true['AUC after transfer']:.4f}, the net trained from random "
        f"weights {nt:.4f}" + (f" (noise of a source mean: {noise:.4f})"
                               if noise else "") +
        ". Train from scratch, or try a zoo closer to this target.")
  else:
    gain = ("" if nt is None else
            f", {best_pred['AUC after transfer'] - nt:+.4f} over training from "
            f"scratch ({nt:.4f})")
    parts.append(
        f"**Recommended source: {best_pred['source']}** (ranked first by "
        f"{method}; fine-tuned {unit} {best_pred['AUC after transfer']:.4f}{gain}; "
        f"true rank {best_pred['true rank']} of {len(rows)}). The best source by "
        f"the fine-tuning ground truth is source {best_true['source']} ({unit} "
        f"{best_true['AUC after transfer']:.4f}).")
    if nt is not None and best_pred["AUC after transfer"] < nt:
      parts.append(f"The pick transfers negatively here (below training from "
                   f"scratch): prefer source {best_true['source']} or no transfer.")
  if st:
    p = st.get("spearman_p")
    parts.append(
        f"{method} agrees with the ground truth at Spearman "
        f"{report.format_value(st.get('spearman'))}"
        + (f" (p = {report.format_value(p, '{:.3g}')})" if p is not None else "")
        + f", weighted tau {report.format_value(st.get('weighted_tau'))}; "
        f"its pick loses {report.format_value(st.get('regret'), '{:.4f}')} {unit} "
        "against the best source (regret).")
  ceiling = ev.get("ceiling")
  if ev.get("degenerate"):
    parts.append("Caution: the ground truth is degenerate (sources are not "
                 "distinguishable above seed/split noise), so this comparison "
                 "cannot be trusted.")
  elif not ceiling:
    parts.append("With one run per source the ground truth's own reliability "
                 "(the ceiling) is undefined; use --num_splits/--num_seeds >= 2 "
                 "to know how much of the ranking is noise.")
  return " ".join(parts)


DEFINITIONS = [
    ("cmi_knn, cmi_binned score (gamma)", "estimated I(Y; F | T) in nats: what "
     "the source's features tell about the target label beyond the target net "
     "N_t. 0 or slightly negative = no evidence of extra information (the k-NN "
     "estimate is noisy around 0 and not clipped)."),
    ("AUC after transfer", "test AUC on D_e of the source's conv layers fine-tuned "
     "on D_t (early stopping on D_v), mean over seeds and splits: the ground truth."),
    ("gain vs scratch", "AUC after transfer minus the AUC of the same CNN trained "
     "from random weights on the same data; negative = negative transfer."),
    ("true rank", "the source's rank by AUC after transfer (1 = best)."),
    ("w-tau", "weighted Kendall tau (scipy.stats.weightedtau) between scores and "
     "AUC; disagreements near the top weigh more. 1 = same order, 0 = unrelated."),
    ("Kendall, Spearman, Pearson", "rank and linear correlations of scores with "
     "AUC; `p` columns are their two-sided p-values against no association "
     "(scipy; small samples make them coarse)."),
    ("(ceiling)", "the same statistic between two random halves of the ground-truth "
     "runs (split-half agreement of the truth with itself): what a perfect "
     "method could reach; undefined with one run per source."),
    ("top-1 hit, top-3 hit", "whether the truly best source is the method's first "
     "(among its first three); expectations over score ties."),
    ("rel@1", "AUC of the method's first pick divided by the best AUC (1 = it picked "
     "the best source)."),
    ("regret", "best AUC minus the AUC of the method's first pick."),
    ("neg. in bottom half", "sources with negative transfer that the method ranks "
     "in its bottom half, of all negative-transfer sources (and the count expected "
     "by chance)."),
    ("sub-pool w-tau", "mean ± sd of w-tau over sub-pools of the sources (random "
     "pools, or every distinct pool when there are fewer than asked for): how "
     "much a method's quality depends on which sources are in the pool."),
    ("Setup Stability", "Agostinelli et al. (ECCV 2022): each sub-pool orders the "
     "methods by their w-tau in it; the score is the mean Kendall tau between "
     "those orderings over every pair of sub-pools (1 = every pool orders the "
     "methods the same way, about 0 = the order is random from pool to pool)."),
    ("degenerate", "the ground truth's spread across sources is not above its "
     "seed/split noise (or split-half Spearman is low): no ranking can be judged."),
    ("– (dash)", "undefined, not zero: a sd of one run, a ceiling with one run "
     "per source, or a correlation with a constant score."),
]


def definitions_markdown() -> list[str]:
  """The report's "Definitions" section, one bullet per statistic."""
  return ["## Definitions", ""] + [f"- **{k}**: {v}" for k, v in DEFINITIONS] + [""]


_TABLE_KEYS = ("weighted_tau", "kendall_tau", "kendall_p", "spearman", "spearman_p",
               "pearson", "pearson_p", "top1_hit", "top3_hit", "rel_top1", "regret")


def method_table(ev: Mapping[str, Any]) -> list[dict[str, Any]]:
  """The evaluation table as plain rows: ceiling first, then every method."""
  rows = []
  ceiling = ev.get("ceiling") or {}
  rows.append({"method": "(ceiling)", **{k: ceiling.get(k, float("nan"))
                                         for k in _TABLE_KEYS}})
  for name, st in ev["methods"].items():
    rows.append({"method": name, **{k: st.get(k, float("nan")) for k in _TABLE_KEYS}})
  return rows


def _latex_cell(v: Any) -> str:
  if isinstance(v, str):
    return v.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace(
        "&", r"\&").replace("%", r"\%").replace("#", r"\#")
  if v is None or (isinstance(v, float) and not math.isfinite(v)):
    return "--"
  return f"{float(v):.3f}"


def latex_table(rows: Sequence[Mapping[str, Any]], caption: str) -> str:
  """A booktabs ``table`` of ``rows`` (undefined values as --)."""
  cols = list(rows[0])
  lines = [r"\begin{table}[t]", r"\centering", f"\\caption{{{_latex_cell(caption)}}}",
           r"\begin{tabular}{l" + "r" * (len(cols) - 1) + "}", r"\toprule",
           " & ".join(_latex_cell(c) for c in cols) + r" \\", r"\midrule"]
  lines += [" & ".join(_latex_cell(r[c]) for c in cols) + r" \\" for r in rows]
  lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
  return "\n".join(lines) + "\n"


def write_tables(workdir: str, ev: Mapping[str, Any], caption: str) -> list[str]:
  """Writes ``evaluation_table.csv`` and ``evaluation_table.tex``; returns paths."""
  rows = method_table(ev)
  csv_path = os.path.join(workdir, "evaluation_table.csv")
  tex_path = os.path.join(workdir, "evaluation_table.tex")
  io.write_csv(csv_path, rows)
  io.write_text(tex_path, latex_table(rows, caption))
  return [csv_path, tex_path]
