"""Leaderboard of a benchmark suite, with the transfer-matters diagnostic per setting.

Input: one record per setting (zoo, target, role, the per-source ground truth
``truth[q]``, the diagnostic, and every method's scores ``[q]``). Per method
and setting: weighted Kendall tau on the whole zoo and on ``num_pools`` random
sub-pools; per method: means over settings with a bootstrap CI, and the paired
bootstrap CI of the difference between two methods, resampling settings and
then sub-pools within each resampled setting (the two levels of variation a
ranking claim must survive).
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from transferjax import io  # noqa: E402
from transferjax.evaluation import stats  # noqa: E402


def zscore_truth(truth: np.ndarray, no_transfer: float) -> np.ndarray:
  """Gain over no transfer in units of the spread across sources: targets with
  AUC and accuracy ground truths become comparable for the cross-target prior."""
  g = np.asarray(truth, np.float64) - no_transfer
  sd = g.std()
  return g / sd if sd > 0 else np.zeros_like(g)


def add_loo_prior(records: list[dict]) -> None:
  """``loo_prior`` in each record: a source's mean standardized gain on the other
  settings of the same zoo (NaN-free; needs >= 2 settings per zoo)."""
  by_zoo: dict[str, list[dict]] = {}
  for r in records:
    by_zoo.setdefault(r["zoo"], []).append(r)
  for group in by_zoo.values():
    if len(group) < 2:
      continue
    z = np.stack([zscore_truth(r["truth"], r["no_transfer"]) for r in group])
    for i, r in enumerate(group):
      r["scores"]["loo_prior"] = np.delete(z, i, axis=0).mean(0)


def subpool_taus(scores: np.ndarray, truth: np.ndarray, pool_size: int,
                 num_pools: int, seed: int = 0) -> np.ndarray:
  """``[num_pools]`` weighted taus on seeded random sub-pools."""
  idx = stats.subpool_indices(len(truth), min(pool_size, len(truth) - 1), num_pools,
                              seed=seed)
  return np.array([stats.rank_statistics(scores[ix], truth[ix])["weighted_tau"]
                   for ix in idx])


def paired_bootstrap(a: np.ndarray, b: np.ndarray, *, num_boot: int = 2000,
                     seed: int = 0) -> dict[str, float]:
  """Mean of ``a - b`` with a two-level paired bootstrap CI.

  Args:
    a, b: ``[settings, pools]`` sub-pool taus of two methods (same pools).

  Returns:
    ``{"diff", "lo", "hi", "p_le_0"}``: the mean difference, the 95% percentile
    interval (settings resampled, then pools within each drawn setting) and the
    bootstrap share of differences <= 0.
  """
  # An undefined tau (a constant score ranks nothing) counts as 0.
  d = (np.nan_to_num(np.asarray(a, np.float64), nan=0.0)
       - np.nan_to_num(np.asarray(b, np.float64), nan=0.0))
  rng = np.random.default_rng(seed)
  s, p = d.shape
  boots = np.empty(num_boot)
  for i in range(num_boot):
    rows = rng.integers(0, s, s)
    cols = rng.integers(0, p, (s, p))
    boots[i] = d[rows[:, None], cols].mean()
  lo, hi = np.percentile(boots, [2.5, 97.5])
  return {"diff": float(d.mean()), "lo": float(lo), "hi": float(hi),
          "p_le_0": float((boots <= 0).mean())}


def bootstrap_mean_ci(x: np.ndarray, *, num_boot: int = 2000, seed: int = 0):
  """95% percentile CI of the mean of ``x[settings, pools]`` (two-level)."""
  zero = np.zeros_like(x)
  r = paired_bootstrap(x, zero, num_boot=num_boot, seed=seed)
  return r["lo"], r["hi"]


# Boards: every setting, each role, and the settings where transfer demonstrably
# matters (the diagnostic's verdict): a method's rank there is the one that counts,
# because on the others the ground truth cannot order the sources.
BOARDS = ("all", "dev", "confirm", "informative")


def board_settings(records: Sequence[Mapping[str, Any]], role: str) -> list[int]:
  """Indices of the records on board ``role`` (one of ``BOARDS``)."""
  if role == "all":
    return list(range(len(records)))
  if role == "informative":
    return [i for i, r in enumerate(records)
            if (r.get("diagnostic") or {}).get("informative")]
  return [i for i, r in enumerate(records) if r["role"] == role]


def leaderboard(records: Sequence[Mapping[str, Any]], methods: Sequence[str], *,
                pool_size: int = 10, num_pools: int = 100) -> dict[str, Any]:
  """Rows per method (all settings and per role), per-setting rows, and the paired
  CI of the top two methods on each board."""
  per = {m: [] for m in methods}       # [settings] of [pools] taus
  full = {m: [] for m in methods}
  rows = []
  for r in records:
    for m in methods:
      taus = subpool_taus(r["scores"][m], r["truth"], pool_size, num_pools)
      st = stats.rank_statistics(r["scores"][m], r["truth"])
      per[m].append(taus)
      full[m].append(st["weighted_tau"])
      rows.append({"zoo": r["zoo"], "target": r["target"], "role": r["role"],
                   "method": m, "weighted_tau": st["weighted_tau"],
                   "spearman": st["spearman"], "top1_hit": st["top1_hit"],
                   "regret": st["regret"], "subpool_tau_mean": float(np.nanmean(taus)),
                   "ceiling_weighted_tau": r["ceiling_weighted_tau"]})
  boards = {}
  for role in BOARDS:
    keep = board_settings(records, role)
    # A board of one setting has no second setting to bootstrap over.
    if not keep or (role == "informative" and len(keep) < 2):
      continue
    board = []
    for m in methods:
      # An undefined tau (constant score: the method ranks nothing) counts as 0,
      # in the mean as in its CI and in the paired comparisons.
      t = np.nan_to_num(np.stack([per[m][i] for i in keep]), nan=0.0)
      lo, hi = bootstrap_mean_ci(t)
      f = np.array([full[m][i] for i in keep])
      board.append({"method": m, "subpool_tau_mean": float(t.mean()),
                    "undefined_share": float(np.mean(~np.isfinite(
                        np.stack([per[m][i] for i in keep])))),
                    "subpool_ci_lo": lo, "subpool_ci_hi": hi,
                    "weighted_tau_mean": float(np.nanmean(f)),
                    "weighted_tau_sd": float(np.nanstd(f)),
                    "settings_won": 0, "settings": len(keep)})
    best = {i: max(methods, key=lambda m: np.nan_to_num(full[m][i], nan=-9))
            for i in keep}
    for b in board:
      b["settings_won"] = sum(best[i] == b["method"] for i in keep)
    board.sort(key=lambda b: -np.nan_to_num(b["subpool_tau_mean"], nan=-9))
    top2 = paired_bootstrap(np.stack([per[board[0]["method"]][i] for i in keep]),
                            np.stack([per[board[1]["method"]][i] for i in keep]))
    boards[role] = {"board": board, "top_two": [board[0]["method"], board[1]["method"]],
                    "top_two_diff": top2, "settings": [records[i]["target"] + "@" +
                                                       records[i]["zoo"] for i in keep]}
  return {"boards": boards, "rows": rows,
          "subpool_taus": {m: [t.tolist() for t in per[m]] for m in methods}}


def compare(result: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
            a: str, b: str, role: str = "all") -> dict[str, float]:
  """Paired bootstrap of method ``a`` minus ``b`` on the settings of ``role``."""
  keep = board_settings(records, role)
  ta = np.array([result["subpool_taus"][a][i] for i in keep])
  tb = np.array([result["subpool_taus"][b][i] for i in keep])
  return paired_bootstrap(ta, tb)


def plot_leaderboard(board: Sequence[Mapping[str, Any]], path: str, *,
                     title: str) -> str:
  """Horizontal bars: mean sub-pool weighted tau with its bootstrap CI."""
  names = [b["method"] for b in board][::-1]
  mean = np.array([b["subpool_tau_mean"] for b in board])[::-1]
  lo = np.array([b["subpool_ci_lo"] for b in board])[::-1]
  hi = np.array([b["subpool_ci_hi"] for b in board])[::-1]
  fig, ax = plt.subplots(figsize=(7, 0.32 * len(names) + 1.5))
  ax.barh(names, mean, xerr=[np.maximum(mean - lo, 0), np.maximum(hi - mean, 0)],
          color="tab:blue", alpha=0.7,
          capsize=2)
  ax.axvline(0, color="k", lw=0.8)
  ax.set_xlabel("mean weighted Kendall tau over settings x sub-pools (95% CI)")
  ax.set_title(title, fontsize=10)
  fig.tight_layout()
  io.save_figure(fig, path)
  return path


def plot_gain_vs_spread(records: Sequence[Mapping[str, Any]], path: str) -> str:
  """Per setting: best-source gain vs spread across sources, both in SE units."""
  fig, ax = plt.subplots(figsize=(6.5, 5))
  for r in records:
    d = r["diagnostic"]
    color = "tab:green" if d["informative"] else "tab:red"
    marker = "o" if r["role"] == "dev" else "s"
    ax.scatter(d["spread_to_noise_se"], d["gain_to_noise_se"], c=color, marker=marker,
               s=40)
    ax.annotate(f"{r['target']}@{r['zoo']}\nrel {d['reliability']:.3f}",
                (d["spread_to_noise_se"], d["gain_to_noise_se"]), fontsize=6,
                xytext=(3, 3), textcoords="offset points")
  ax.axhline(2, color="gray", ls="--", lw=0.8)
  ax.set_xlim(left=0)
  ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
  ax.set_xlabel("spread across sources / SE of a source's mean")
  ax.set_ylabel("best-source gain over no transfer / SE")
  ax.set_title("Transfer-matters diagnostic (green: informative; o dev, s confirm)",
               fontsize=9)
  fig.tight_layout()
  io.save_figure(fig, path)
  return path
