"""Judge any ranking against a ground truth the user measured elsewhere.

``evaluate_ranking(ranking, ground_truth_csv, workdir)`` reads a ranking
(``ranking.json`` of ``experiments.rank``, either path) and a CSV with columns
``source,score`` (the score of each fine-tuned model: accuracy, AUC, ...;
higher = better) and writes the same statistics as the study's report
(weighted/Kendall tau, Spearman, Pearson, top-1/top-3 hit, relative top-1,
regret, sub-pool stability) for every method in the ranking. With one number
per source there is no reliability ceiling (it needs repeated fine-tuning
runs), so the report shows none.
"""
from __future__ import annotations

import csv
import math
import os
from typing import Any

import numpy as np

from transferjax import io as tio
from transferjax.errors import DataError
from transferjax.evaluation.report import evaluate_methods, write_report

_GT_FIX = ("Write it as a CSV with a header 'source,score' and one row per ranked "
           "source (the name as in ranking.csv, the fine-tuned model's score).")


def read_ground_truth(path: str) -> dict[str, float]:
  """``{source: score}`` from a ``source,score`` CSV (DataError naming the fix)."""
  if not os.path.isfile(path):
    raise DataError(f"ground truth {path!r} does not exist. {_GT_FIX}")
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    cols = [c.strip() for c in (reader.fieldnames or [])]
    if "source" not in cols or "score" not in cols:
      raise DataError(f"{path}: columns {cols}; need 'source' and 'score'. {_GT_FIX}")
    out: dict[str, float] = {}
    for line, row in enumerate(reader, start=2):
      row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
      name = row["source"]
      try:
        value = float(row["score"])
      except ValueError:
        raise DataError(f"{path} line {line}: score {row['score']!r} of {name!r} "
                        f"is not a number. {_GT_FIX}") from None
      if not math.isfinite(value):
        raise DataError(f"{path} line {line}: score of {name!r} is {value}. {_GT_FIX}")
      if name in out:
        raise DataError(f"{path} line {line}: source {name!r} appears twice. {_GT_FIX}")
      out[name] = value
  if len(out) < 3:
    raise DataError(f"{path}: {len(out)} sources; rank statistics need at least 3.")
  return out


def read_ranking(path: str) -> tuple[list[str], dict[str, np.ndarray]]:
  """``(source names, {method: scores [q]})`` of a ``ranking.json`` (or its folder).

  ``--sources`` rankings store every method's scores; a ``--zoo`` ranking holds
  one method, and its sources are named by ``source_id``.
  """
  if os.path.isdir(path):
    path = os.path.join(path, "ranking.json")
  if not os.path.isfile(path):
    raise DataError(f"no ranking at {path!r}; run python -m experiments.rank first "
                    "and pass its ranking.json (or its --workdir).")
  data = tio.read_json(path)
  if "scores" in data:
    names = list(next(iter(data["scores"].values())))
    return names, {m: np.array([np.nan if v[n] is None else v[n] for n in names],
                               np.float64)
                   for m, v in data["scores"].items()}
  rows = data.get("ranking")
  if not rows:
    raise DataError(f"{path}: not a ranking.json of experiments.rank.")
  names = [str(r.get("source", r.get("source_id"))) for r in rows]
  key = "score" if "score" in rows[0] else "gamma"
  return names, {data.get("method", key): np.array(
      [np.nan if r[key] is None else r[key] for r in rows], np.float64)}


def match(names: list[str], truth: dict[str, float], gt_path: str) -> np.ndarray:
  """The ground truth in ``names`` order; DataError if either side has extras."""
  missing = [n for n in names if n not in truth]
  unknown = [n for n in truth if n not in set(names)]
  problems = []
  if missing:
    problems.append(f"no ground truth for {len(missing)} ranked source(s) "
                    f"{missing[:5]}{' ...' if len(missing) > 5 else ''}")
  if unknown:
    problems.append(f"{len(unknown)} source(s) in the ground truth are not in the "
                    f"ranking {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
  if problems:
    raise DataError(f"{gt_path}: " + "; ".join(problems) + ". The ground truth and "
                    "the ranking must name the same sources (as in ranking.csv's "
                    "'source' column).")
  return np.array([truth[n] for n in names], np.float64)


def evaluate_ranking(ranking: str, ground_truth: str, workdir: str, *,
                     num_pools: int = 100, seed: int = 0) -> dict[str, Any]:
  """Writes ``report.md``, ``evaluation.json`` and a figure; returns the evaluation."""
  names, method_scores = read_ranking(ranking)
  truth = match(names, read_ground_truth(ground_truth), ground_truth)
  notes = [f"Ranking: {os.path.abspath(ranking)}; ground truth: "
           f"{os.path.abspath(ground_truth)} ({len(names)} sources).",
           "One ground-truth number per source: no reliability ceiling."]
  usable = {}
  for m, s in method_scores.items():
    if np.isfinite(s).all():
      usable[m] = s
    else:
      notes.append(f"{m}: left out ({int((~np.isfinite(s)).sum())} sources without "
                   "a score).")
  if not usable:
    raise DataError(f"{ranking}: no method scored every source.")
  ev = evaluate_methods(usable, truth, num_pools=num_pools, seed=seed)
  os.makedirs(workdir, exist_ok=True)
  from transferjax.evaluation import figures  # pylint: disable=g-import-not-at-top
  fig = figures.plot_score_vs_auc(usable, truth, None,
                                  os.path.join(workdir, "score_vs_ground_truth.png"),
                                  title="ranking score vs your ground truth")
  write_report(workdir, ev, figures=[fig], title="Ranking vs your ground truth",
               notes=notes)
  return ev
