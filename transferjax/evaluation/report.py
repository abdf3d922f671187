"""Evaluate every ranking method against the ground truth; write report.md + JSON.

``evaluate_methods`` turns scores and fine-tune AUCs into one plain dict;
``write_report`` renders it as Markdown tables and writes ``evaluation.json``:

```
{"num_sources": q,
 "no_transfer": {"mean", "sd", "num_runs"} | null,
 "ceiling": {"weighted_tau", "kendall_tau", "spearman", "pearson"} | null,
 "ceiling_upper": float | null,          # sqrt(Spearman-Brown), Spearman units
 "degenerate": bool | null,
 "reliability": {...} | null,            # stats.reliability() output
 "subpool": {"pool_size", "num_pools", "seed", "setup_stability",
             "setup_stability_methods"} | null,
 "methods": {name: {weighted_tau, kendall_tau, spearman, pearson, top1_hit,
                    top3_hit, rel_top1, regret, num_negative, ...,
                    "subpool": {mean, sd, median, ..., taus}}}}
```
Method results sit under ``"methods"`` so a method name can never collide with a
top-level key.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from transferjax.provenance import provenance
from transferjax import io
from transferjax.errors import EstimatorError
from transferjax.evaluation import stats

__all__ = ["evaluate_methods", "write_report", "leaderboard_markdown",
           "format_value"]

_LABELS = {"weighted_tau": "w-tau", "kendall_tau": "Kendall", "spearman": "Spearman",
           "pearson": "Pearson"}


def evaluate_methods(method_scores: Mapping[str, Any], auc: Any, *,
                     no_transfer: Any = None, pool_size: int = 10,
                     num_pools: int = 100, seed: int = 0,
                     num_halvings: int = 50) -> dict[str, Any]:
  """Rank statistics of every method, ground-truth reliability, sub-pool stability.

  Args:
    method_scores: method name -> ``[q]`` scores (higher = predicted better).
    auc: ground truth, ``[q]`` or ``[q, num_seeds, num_splits]`` (or ``[q, R]``);
      the per-source mean over runs is the truth that methods are judged on.
    no_transfer: the from-scratch AUC, a scalar or an array of runs.
    pool_size: sub-pool size (clamped to ``q - 1`` so pools differ).
    num_pools: number of random sub-pools (0 disables the sub-pool analysis).
    seed: seed for sub-pools and split halvings.
    num_halvings: split halvings in :func:`stats.reliability`.

  Returns:
    The evaluation dict described in the module docstring.
  """
  if not method_scores:
    raise EstimatorError("method_scores is empty: there is nothing to evaluate.")
  a = np.asarray(auc, dtype=np.float64)
  q = a.shape[0] if a.ndim else 0
  truth = a.reshape(q, -1).mean(axis=1) if a.ndim > 1 else a
  ev: dict[str, Any] = {"num_sources": int(q), "no_transfer": None, "ceiling": None,
                        "ceiling_upper": None, "degenerate": None,
                        "reliability": None, "subpool": None, "methods": {}}
  nt_mean = None
  if no_transfer is not None:
    nt = np.asarray(no_transfer, dtype=np.float64).ravel()
    nt_mean = float(nt.mean())
    ev["no_transfer"] = {"mean": nt_mean,
                         "sd": float(nt.std(ddof=1)) if nt.size > 1 else float("nan"),
                         "num_runs": int(nt.size)}
  if a.ndim > 1 and a.reshape(q, -1).shape[1] >= 2 and q >= 3:
    rel = stats.reliability(a, num_halvings=num_halvings, seed=seed)
    ev["reliability"] = rel
    ev["ceiling"] = rel["ceiling"]
    ev["ceiling_upper"] = rel["ceiling_upper"]
    ev["degenerate"] = rel["degenerate"]
  for name, sc in method_scores.items():
    ev["methods"][name] = stats.rank_statistics(sc, truth, no_transfer=nt_mean)
  eff_pool = min(pool_size, q - 1)
  if num_pools > 0 and eff_pool >= 2:
    names, taus = stats.subpool_table(method_scores, truth, pool_size=eff_pool,
                                      num_pools=num_pools, seed=seed)
    for name in names:
      ev["methods"][name]["subpool"] = stats.subpool_stability(
          method_scores[name], truth, pool_size=eff_pool, num_pools=num_pools,
          seed=seed)
    # A method whose tau is undefined (constant score) would make every Kendall
    # tau of the SS score nan; it is left out of the SS score (and listed).
    keep = np.all(np.isfinite(taus), axis=0)
    ss_names = [n for n, k in zip(names, keep) if k]
    ss = (stats.setup_stability_score(taus[None][:, :, keep])
          if len(ss_names) >= 2 and taus.shape[0] >= 2 else float("nan"))
    ev["subpool"] = {"pool_size": eff_pool, "num_pools": int(taus.shape[0]),
                     "exhaustive": taus.shape[0] == stats.distinct_pools(q, eff_pool),
                     "seed": seed, "setup_stability": ss,
                     "setup_stability_methods": ss_names}
  return ev


def format_value(v: Any, float_fmt: str = "{:.3f}") -> str:
  """One table cell: floats formatted, nan/None as an en dash, '|' escaped."""
  if v is None:
    return "–"
  if isinstance(v, (bool, np.bool_)):
    return "yes" if v else "no"
  if isinstance(v, (int, np.integer)):
    return str(int(v))
  if isinstance(v, (float, np.floating)):
    return "–" if not math.isfinite(float(v)) else float_fmt.format(float(v))
  return str(v).replace("|", "\\|").replace("\n", " ")


def leaderboard_markdown(rows: Sequence[Mapping[str, Any]],
                         columns: Sequence[str] | None = None, *,
                         float_fmt: str = "{:.3f}") -> str:
  """A GitHub-Markdown table, one row per dict.

  Args:
    rows: the table rows (missing keys render as an en dash).
    columns: column keys in order; default: the union of the rows' keys in order
      of first appearance.
    float_fmt: format of float cells.

  Returns:
    The table text (header, separator, rows), ending in a newline.
  """
  if columns is None:
    columns = []
    for r in rows:
      columns += [k for k in r if k not in columns]
  columns = list(columns)
  if not columns:
    raise EstimatorError("leaderboard_markdown needs at least one column.")
  lines = ["| " + " | ".join(format_value(c) for c in columns) + " |",
           "|" + "|".join("---" for _ in columns) + "|"]
  for r in rows:
    lines.append("| " + " | ".join(format_value(r.get(c), float_fmt)
                                   for c in columns) + " |")
  return "\n".join(lines) + "\n"


def _method_rows(ev: Mapping[str, Any]) -> list[dict[str, Any]]:
  ceiling = ev.get("ceiling") or {}
  rows = []
  for name, st in ev["methods"].items():
    row: dict[str, Any] = {"method": name}
    for k, label in _LABELS.items():
      c = ceiling.get(k)
      cell = format_value(st.get(k))
      # The ceiling sits beside each correlation: how well the truth ranks itself
      # (no "(ceiling)" header when it is undefined: one run per source).
      if ceiling:
        row[f"{label} (ceiling)"] = (f"{cell} ({format_value(c)})" if c is not None
                                     else cell)
      else:
        row[label] = cell
    row["Spearman p"] = format_value(st.get("spearman_p"), "{:.3g}")
    row.update({"top-1 hit": st.get("top1_hit"), "top-3 hit": st.get("top3_hit"),
                "rel@1": st.get("rel_top1"), "regret": st.get("regret")})
    if "num_negative" in st:
      row["neg. in bottom half"] = (f"{st['negative_in_bottom_half']:g}/"
                                    f"{st['num_negative']} (chance "
                                    f"{st['negative_in_bottom_half_chance']:.1f})")
    sp = st.get("subpool")
    if sp:
      row["sub-pool w-tau"] = f"{format_value(sp['mean'])} ± {format_value(sp['sd'])}"
    rows.append(row)
  return rows


def reproduce_markdown(record: Mapping[str, Any], recorded_json: str) -> list[str]:
  """The report's "Reproduce" section: command, commit, versions, devices and
  the resolved config of a ``provenance()`` record."""
  run = record.get("run")
  versions = record.get("versions", {})
  dev = record.get("devices", {})
  out = ["## Reproduce", ""]
  if run:
    module = run["command"].split()[2] if run["command"].startswith("python -m ") else None
    out += ["Command of this run:", "", "```", run["command"], "```", ""]
    if module:
      out += ["Rerun from the config recorded here:", "", "```",
              f"python -m {module} --config=configs/recorded.py:{recorded_json}", "```", ""]
  out.append(f"- commit: `{record.get('commit', 'unknown')}`")
  out.append("- versions: " + ", ".join(
      f"{k} {versions[k]}" for k in ("jax", "jaxlib", "flax", "optax") if k in versions))
  if dev:
    out.append(f"- devices: {dev.get('count')} x {', '.join(dev.get('kinds', []))} "
               f"({dev.get('backend')}, {dev.get('processes')} process(es))")
  config = run["config"] if run else record.get("config")
  if config is not None:
    label = (f"resolved config ({run['config_file']} with this run's overrides)"
             if run else "resolved config")
    out += ["", f"<details><summary>{label}</summary>", "", "```"]
    out += [f"{k} = {json.dumps(v, default=str)}" for k, v in _flatten(config)]
    out += ["```", "", "</details>"]
  return out + [""]


def _flatten(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
  """``{"a": {"b": 1}}`` -> ``[("a.b", 1)]``, keys sorted."""
  if not isinstance(tree, Mapping):
    return [(prefix, tree)]
  rows = []
  for k in sorted(tree):
    rows += _flatten(tree[k], f"{prefix}.{k}" if prefix else str(k))
  return rows


def write_report(workdir: str, evaluation: Mapping[str, Any],
                 figures: Sequence[str] = (), title: str = "Source ranking evaluation",
                 notes: str | Sequence[str] = (), lead: Sequence[str] = ()) -> str:
  """Write ``report.md`` and ``evaluation.json`` into ``workdir``.

  Args:
    workdir: output directory (created if needed).
    evaluation: a dict from :func:`evaluate_methods` (``"methods"`` required).
    figures: PNG paths to embed (linked relative to ``workdir``).
    title: the report's heading.
    notes: free text (or lines) appended under "Notes".
    lead: Markdown lines placed right under the title (the answer and the
      per-source table, ``answer.py``).

  Returns:
    The path of ``report.md``.
  """
  if "methods" not in evaluation or not evaluation["methods"]:
    raise EstimatorError("evaluation has no 'methods'; build it with "
                         "evaluate_methods(method_scores, auc, ...).")
  os.makedirs(workdir, exist_ok=True)
  io.write_json(os.path.join(workdir, "evaluation.json"),
                {**evaluation, "provenance": evaluation.get("provenance") or provenance()})
  out = [f"# {title}", ""] + list(lead) + (["", "## Setting", ""] if lead else [])
  nt = evaluation.get("no_transfer")
  q = evaluation.get("num_sources")
  out.append(f"- sources: {q}")
  if nt:
    runs = nt.get("num_runs", "?")
    sd = (f"± {format_value(nt.get('sd'))} (sd over {runs} runs)" if runs != 1
          else "(one run: sd undefined)")
    out.append(f"- no-transfer AUC: {format_value(nt['mean'])} {sd}")
  rel = evaluation.get("reliability")
  if rel:
    out.append(f"- ground truth: spread {format_value(rel['spread'], '{:.4f}')}, "
               f"noise {format_value(rel['noise'], '{:.4f}')} (SE of a source mean "
               f"{format_value(rel['noise_se'], '{:.4f}')}, {rel['num_runs']} runs), "
               f"split-half Spearman {format_value(rel['split_half']['spearman'])}, "
               f"Spearman-Brown {format_value(rel['spearman_brown'])}, "
               f"ceiling for a perfect score sqrt(SB) = "
               f"{format_value(rel['ceiling_upper'])}")
  else:
    out.append("- ground truth reliability: not available (needs >= 2 runs per "
               "source); correlations have no ceiling to compare with.")
  if evaluation.get("degenerate"):
    out += ["", f"> **WARNING: degenerate ground truth** ({rel['degenerate_rule']}). "
            "The sources are not distinguishable by their fine-tuned AUC, so no "
            "ranking method can be judged on this setting."]
    out += [f"> - {n}" for n in rel.get("notes", [])]
  sp = evaluation.get("subpool")
  if sp:
    kind = ("every distinct pool" if sp.get("exhaustive")
            else f"random pools, seed {sp['seed']}")
    out.append(f"- sub-pools: {sp['num_pools']} pools of {sp['pool_size']} of the "
               f"{q} sources ({kind}); Setup Stability score of the method "
               f"ranking across pools: {format_value(sp['setup_stability'])}")
  out += ["", "## Methods", "",
          "Correlations with the mean AUC after transfer"
          + ("; in parentheses the ceiling (split-half agreement of the ground truth "
             "with itself, same statistic)" if evaluation.get("ceiling") else
             " (no ceiling: it needs >= 2 runs per source)")
          + ". top-k hits are expectations over score ties.", ""]
  out.append(leaderboard_markdown(_method_rows(evaluation)))
  method_notes = [(n, m) for n, st in evaluation["methods"].items()
                  for m in st.get("notes", [])]
  if method_notes:
    out += ["Per-method notes:", ""] + [f"- {n}: {m}" for n, m in method_notes] + [""]
  if figures:
    out += ["## Figures", ""]
    for f in figures:
      rel_path = os.path.relpath(os.path.abspath(f), os.path.abspath(workdir))
      out += [f"![{os.path.basename(f)}]({rel_path})", ""]
  if isinstance(notes, str):
    notes = [notes] if notes else []
  if notes:
    out += ["## Notes", ""] + list(notes) + [""]
  out += reproduce_markdown(evaluation.get("provenance") or provenance(),
                            os.path.join(workdir, "evaluation.json"))
  from transferjax.evaluation import answer  # pylint: disable=g-import-not-at-top
  out += answer.definitions_markdown()
  path = os.path.join(workdir, "report.md")
  io.write_text(path, "\n".join(out).rstrip() + "\n")
  return path
