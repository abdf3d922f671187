"""Rank statistics, ground-truth reliability and stability of a source ranking.

Everything here is NumPy/SciPy on small arrays (one number per source), so it runs
on the host. Correlations come from ``scipy.stats`` (never re-derived):

* ``weightedtau``: ``scipy.stats.weightedtau(scores, truth)`` with SciPy's defaults
  (hyperbolic weigher, ``rank=True``: the weighted tau of the two lexicographic
  orders, averaged, so it is symmetric). This is the ``w-kendall`` of
  google-research ``stable_transfer`` and of the SFDA/LogME tables.
* ``kendalltau`` (tau-b), ``spearmanr``, ``pearsonr``.

Undefined values (a constant score or truth vector) come back as ``nan`` with a
sentence in ``notes``; nothing here raises on ties. Scores that differ only by
float rounding (relative 1e-10 of the largest magnitude) are ties: a metric that
is mathematically constant over the sources (H-score with fewer images than
feature dimensions is exactly 1 up to ~1e-13) must not be ranked on its
rounding noise. Ties in the score are broken
uniformly at random *in expectation*: ``top1_hit``, ``top3_hit``, ``rel_top1`` and
``regret`` are the expected values over all tie-breaks, so a constant score gets
``top1_hit = 1/q`` rather than a lucky 1 for whichever source comes first.
"""
from __future__ import annotations

import itertools
import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import special
from scipy import stats as sps

from transferjax.errors import EstimatorError

__all__ = [
    "rank_statistics", "expected_top_k_hit", "reliability", "subpool_indices",
    "subpool_stability", "subpool_table", "setup_stability_score",
    "setup_stability_score_from_records", "CORRELATIONS",
]

# The rank/linear correlations reported for every method, in report order.
CORRELATIONS = ("weighted_tau", "kendall_tau", "spearman", "pearson")


def _as_vector(x: Any, name: str) -> np.ndarray:
  arr = np.asarray(x, dtype=np.float64)
  if arr.ndim != 1:
    raise EstimatorError(f"{name} must be a 1-D array [q] (one value per source); "
                         f"got shape {arr.shape}.")
  if not np.all(np.isfinite(arr)):
    bad = np.flatnonzero(~np.isfinite(arr))
    raise EstimatorError(
        f"{name} has non-finite values at sources {bad.tolist()[:10]}; fix or drop "
        "those sources before evaluating (a NaN score usually means the estimator "
        "failed for that source).")
  return arr


# Relative resolution below which two scores are the same number (ties).
SCORE_RESOLUTION = 1e-10


def _snap_rounding(s: np.ndarray) -> np.ndarray:
  """``s`` with values closer than ``SCORE_RESOLUTION`` (relative) made equal."""
  scale = float(np.max(np.abs(s))) if s.size else 0.0
  if scale == 0.0:
    return s
  step = SCORE_RESOLUTION * scale
  return np.round(s / step) * step


def _check_pair(scores: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
  s = _snap_rounding(_as_vector(scores, "scores"))
  t = _as_vector(truth, "truth")
  if s.shape != t.shape:
    raise EstimatorError(f"scores {s.shape} and truth {t.shape} must have the same "
                         "length (one entry per source, same order).")
  if s.size < 2:
    raise EstimatorError(f"Need at least 2 sources to rank; got {s.size}.")
  return s, t


def _correlations(s: np.ndarray, t: np.ndarray) -> tuple[dict[str, float], list[str]]:
  """The four correlations of ``scores`` vs ``truth``; nan + note when undefined."""
  out = {k: float("nan") for k in CORRELATIONS}
  out.update({"kendall_p": float("nan"), "spearman_p": float("nan"),
              "pearson_p": float("nan")})
  notes = []
  const_s = np.ptp(s) == 0
  const_t = np.ptp(t) == 0
  if const_s or const_t:
    which = " and ".join(n for n, c in (("scores", const_s), ("truth", const_t)) if c)
    notes.append(f"{which} constant over the {s.size} sources: correlations are "
                 "undefined (nan).")
    return out, notes
  with warnings.catch_warnings():
    # Near-constant inputs can still warn; the values are what we report.
    warnings.simplefilter("ignore")
    out["weighted_tau"] = float(sps.weightedtau(s, t).statistic)
    kt = sps.kendalltau(s, t)
    out["kendall_tau"], out["kendall_p"] = float(kt.statistic), float(kt.pvalue)
    sr = sps.spearmanr(s, t)
    out["spearman"], out["spearman_p"] = float(sr.statistic), float(sr.pvalue)
    pr = sps.pearsonr(s, t)
    out["pearson"], out["pearson_p"] = float(pr.statistic), float(pr.pvalue)
  return out, notes


def expected_top_k_hit(scores: Any, truth: Any, k: int) -> float:
  """P(a true-best source is among the top ``k`` by score), ties broken at random.

  The top ``k`` holds every source scored strictly above the k-th largest score
  ``s_c`` plus a uniformly random subset of the sources tied at ``s_c``. A hit is
  any source with the maximal truth in that set (ties in the truth all count).

  Args:
    scores: ``[q]`` higher = predicted better.
    truth: ``[q]`` higher = better after transfer.
    k: how many top-scored sources to look at (``>= 1``).

  Returns:
    The hit probability in ``[0, 1]`` (exactly 0 or 1 when there are no ties).
  """
  s, t = _check_pair(scores, truth)
  if k < 1:
    raise EstimatorError(f"k must be >= 1; got {k}.")
  q = s.size
  if k >= q:
    return 1.0
  best = t == t.max()
  s_c = np.sort(s)[::-1][k - 1]
  above = s > s_c
  tied = s == s_c
  if np.any(best & above):
    return 1.0
  g = int(tied.sum())
  b = int((best & tied).sum())
  need = k - int(above.sum())
  if b == 0:
    return 0.0
  # 1 - P(none of the b true-best tied sources is among the `need` drawn of g).
  return float(1.0 - special.comb(g - b, need, exact=True) /
               special.comb(g, need, exact=True))


def rank_statistics(scores: Any, truth: Any, *,
                    no_transfer: float | None = None) -> dict[str, Any]:
  """How well a score ranks the sources against their ground truth.

  Args:
    scores: ``[q]`` one score per source, higher = predicted better.
    truth: ``[q]`` the ground truth (e.g. mean test AUC after fine-tuning).
    no_transfer: the truth of the from-scratch target net, if known; adds the
      negative-transfer counts.

  Returns:
    A dict with ``weighted_tau``, ``kendall_tau``, ``spearman``, ``pearson`` (and
    ``kendall_p``, ``spearman_p``, ``pearson_p``); ``top1_hit`` and ``top3_hit``
    (expected over score ties: is a true-best source in the top 1/3 by score);
    ``rel_top1`` (mean truth of the top-scored sources / best truth) and ``regret``
    (best truth - that mean truth); ``num_sources``; ``notes`` (list of str).
    With ``no_transfer``: ``num_negative`` (sources with truth < no_transfer),
    ``negative_in_bottom_half`` (how many of those the score ranks among its
    ``floor(q/2)`` lowest; a float, the expectation over score ties) and
    ``negative_in_bottom_half_chance`` (what a random score would get on
    average: ``num_negative * floor(q/2) / q``).
  """
  s, t = _check_pair(scores, truth)
  q = s.size
  out: dict[str, Any] = {}
  corr, notes = _correlations(s, t)
  out.update(corr)
  out["top1_hit"] = expected_top_k_hit(s, t, 1)
  out["top3_hit"] = expected_top_k_hit(s, t, 3)
  top = s == s.max()
  if top.sum() > 1:
    notes.append(f"{int(top.sum())} sources tie for the top score; top-1 statistics "
                 "are expectations over random tie-breaking.")
  chosen = float(t[top].mean())
  best = float(t.max())
  out["rel_top1"] = chosen / best if best != 0 else float("nan")
  out["regret"] = best - chosen
  out["num_sources"] = q
  if no_transfer is not None:
    nt = float(no_transfer)
    negative = t < nt
    h = q // 2  # the bottom half: the floor(q/2) lowest-scored positions
    # A source tied with g others at ascending positions a+1..a+g lands in the
    # bottom h with probability clip((h - a) / g, 0, 1) under random tie-breaking.
    below = sps.rankdata(s, method="min") - 1     # a: sources scored strictly lower
    group = sps.rankdata(s, method="max") - below  # g: size of the tie group
    p_bottom = np.clip((h - below) / group, 0.0, 1.0)
    out["no_transfer"] = nt
    out["num_negative"] = int(negative.sum())
    out["negative_in_bottom_half"] = float(p_bottom[negative].sum())
    out["negative_in_bottom_half_chance"] = float(negative.sum() * h / q)
  out["notes"] = notes
  return out


def split_level_reliability(auc: Any, *, max_halvings: int = 50,
                            seed: int = 0) -> dict[str, Any]:
  """Reliability of the per-source means over *labeled draws*, not runs.

  ``reliability`` halves the pooled runs at random, so with several seeds per
  split both halves nearly always hold runs of every split: it measures "other
  fine-tuning seeds on the same labeled images". Here every split's runs (all
  its seeds) go to the same half, so a source x split interaction (the order of
  sources depends on which images are labeled) counts as noise. It is the
  stricter of the two and the one that says whether the ranking of sources
  would hold on another draw of the labeled set.

  Args:
    auc: ``[q, num_seeds, num_splits]`` scores per source, seed and split.
    max_halvings: halvings of the splits to average; every halving is used
      when there are at most this many, else a seeded random sample.
    seed: NumPy seed of that sample.

  Returns:
    ``{"split_half", "spearman_brown", "num_halvings", "num_splits"}``: the mean
    Spearman between the per-source means of two disjoint halves of the splits,
    stepped up by Spearman-Brown to all splits; nan with fewer than 2 splits.
  """
  a = np.asarray(auc, dtype=np.float64)
  if a.ndim != 3:
    raise EstimatorError(f"auc must be [q, num_seeds, num_splits]; got shape {a.shape}.")
  num_splits = a.shape[2]
  nan = {"split_half": float("nan"), "spearman_brown": float("nan"),
         "num_halvings": 0, "num_splits": num_splits}
  if num_splits < 2:
    return nan
  half = num_splits // 2
  # Halvings that hold split 0 in the first half: each partition once.
  halvings = [c for c in itertools.combinations(range(num_splits), half) if 0 in c]
  if len(halvings) > max_halvings:
    rng = np.random.default_rng(seed)
    halvings = [halvings[i] for i in rng.choice(len(halvings), max_halvings,
                                                replace=False)]
  rs = []
  for first in halvings:
    second = [p for p in range(num_splits) if p not in first][:half]
    r = sps.spearmanr(a[:, :, list(first)].mean(axis=(1, 2)),
                      a[:, :, second].mean(axis=(1, 2)))[0]
    if np.isfinite(r):
      rs.append(float(r))
  if not rs:
    return nan
  r = float(np.mean(rs))
  return {"split_half": r, "spearman_brown": 2 * r / (1 + r) if r > -1 else float("nan"),
          "num_halvings": len(rs), "num_splits": num_splits}


def reliability(auc: Any, *, num_halvings: int = 50, seed: int = 0,
                min_split_half: float = 0.3) -> dict[str, Any]:
  """Is the ground truth itself able to rank the sources? Spread vs noise.

  ``auc[i, s, p]`` is source i's test AUC with fine-tune seed s on split p. The
  (seed, split) pairs are pooled into ``R = num_seeds * num_splits`` runs.

  * ``spread``: std over sources of the per-source mean (ddof=1).
  * ``noise``: mean over sources of the within-source std over runs (ddof=1),
    after subtracting each run's mean over sources, because a shift shared by all
    sources (an easy split, say) cannot change a ranking.
  * ``noise_se = noise / sqrt(R)``: the standard error of one per-source mean. If
    the sources were all equal, ``spread`` would be about ``noise_se``.
  * ``split_half``: each halving randomly splits the runs into two disjoint halves
    of ``R // 2``; per-source means on each half; their agreement (Spearman,
    Pearson, Kendall tau, weighted tau) is averaged over ``num_halvings`` seeded
    halvings (nan halvings, e.g. a constant half, are skipped).
    ``spearman_brown = 2 r / (1 + r)`` (r = split-half Spearman) estimates the
    reliability of the mean over all R runs.
  * ``ceiling``: per statistic, the split-half agreement: how well one noisy copy
    of the ground truth ranks another. ``ceiling_upper = sqrt(spearman_brown)``
    is the attenuation bound: the expected Spearman of a *perfect* score with the
    full-run mean (Spearman units).
  * ``degenerate``: True when ``spread <= noise_se`` (sources no more different
    than noise alone would make them) or split-half Spearman ``< min_split_half``
    (nan counts as degenerate). A method's correlation on a degenerate ground
    truth says nothing about the method.

  Args:
    auc: ``[q, num_seeds, num_splits]`` (a ``[q, R]`` array is taken as one split).
    num_halvings: random halvings to average.
    seed: NumPy seed of the halvings.
    min_split_half: the split-half Spearman below which the truth is degenerate.

  Returns:
    The dict described above, plus ``per_source_mean`` ``[q]``, ``num_runs``,
    ``spread_to_noise`` (spread / noise), ``spread_to_noise_se`` and ``notes``.
  """
  a = np.asarray(auc, dtype=np.float64)
  if a.ndim == 2:
    a = a[:, :, None]
  if a.ndim != 3:
    raise EstimatorError(
        f"auc must be [q, num_seeds, num_splits]; got shape {a.shape}.")
  if not np.all(np.isfinite(a)):
    raise EstimatorError("auc has non-finite entries; a failed fine-tune run must be "
                         "rerun or dropped before the reliability analysis.")
  q = a.shape[0]
  runs = a.reshape(q, -1)
  r_total = runs.shape[1]
  if q < 3:
    raise EstimatorError(f"Reliability needs at least 3 sources; got {q}.")
  if r_total < 2:
    raise EstimatorError(
        f"Reliability needs at least 2 runs per source (seeds x splits); got "
        f"{r_total}. Fine-tune with more seeds or splits.")
  notes = []
  means = runs.mean(axis=1)
  spread = float(means.std(ddof=1))
  centered = runs - runs.mean(axis=0, keepdims=True)
  noise = float(centered.std(axis=1, ddof=1).mean())
  noise_se = noise / math.sqrt(r_total)
  rng = np.random.default_rng(seed)
  half = r_total // 2
  if r_total % 2:
    notes.append(f"{r_total} runs is odd: each halving leaves one run out.")
  vals = {k: [] for k in CORRELATIONS}
  for _ in range(num_halvings):
    perm = rng.permutation(r_total)
    ma = runs[:, perm[:half]].mean(axis=1)
    mb = runs[:, perm[half:2 * half]].mean(axis=1)
    corr, _ = _correlations(ma, mb)
    for k in CORRELATIONS:
      vals[k].append(corr[k])
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # all-nan -> nan, on purpose
    split_half = {k: float(np.nanmean(v)) if np.any(np.isfinite(v)) else float("nan")
                  for k, v in vals.items()}
    split_half_sd = {k: float(np.nanstd(v)) if np.any(np.isfinite(v)) else float("nan")
                     for k, v in vals.items()}
  r = split_half["spearman"]
  sb = 2 * r / (1 + r) if np.isfinite(r) and r > -1 else float("nan")
  ceiling_upper = math.sqrt(sb) if np.isfinite(sb) and sb > 0 else 0.0
  if not np.isfinite(r):
    notes.append("split-half Spearman undefined (constant halves): degenerate.")
  low_spread = spread <= noise_se
  low_rel = not (np.isfinite(r) and r >= min_split_half)
  if low_spread:
    notes.append(f"spread {spread:.4g} <= noise SE {noise_se:.4g}: the sources differ "
                 "no more than seed/split noise would make them.")
  if low_rel:
    notes.append(f"split-half Spearman {r:.3g} < {min_split_half}: the ground truth "
                 "does not reproduce its own ranking.")
  return {
      "num_sources": q, "num_runs": r_total, "per_source_mean": means,
      "spread": spread, "noise": noise, "noise_se": noise_se,
      "spread_to_noise": spread / noise if noise > 0 else float("inf"),
      "spread_to_noise_se": spread / noise_se if noise_se > 0 else float("inf"),
      "split_half": split_half, "split_half_sd": split_half_sd,
      "spearman_brown": sb, "ceiling": dict(split_half),
      "ceiling_upper": ceiling_upper,
      "degenerate": bool(low_spread or low_rel),
      "degenerate_rule": (f"spread <= noise/sqrt(R) or split-half Spearman < "
                          f"{min_split_half}"),
      "notes": notes,
  }


def distinct_pools(num_sources: int, pool_size: int) -> int:
  """How many different sub-pools of ``pool_size`` out of ``num_sources`` exist."""
  return math.comb(int(num_sources), int(pool_size))


def subpool_indices(num_sources: int, pool_size: int, num_pools: int,
                    seed: int = 0) -> np.ndarray:
  """Source sub-pools, without replacement within a pool.

  When at most ``num_pools`` different pools exist (e.g. 8 pools of 7 out of
  8 sources), every one is returned once, so no pool is counted twice;
  otherwise ``num_pools`` random pools.

  Args:
    num_sources: q.
    pool_size: sources per pool (``2 <= pool_size <= q``).
    num_pools: how many pools (at most; capped by ``distinct_pools``).
    seed: NumPy seed; the same seed gives the same pools for every method.

  Returns:
    int ``[min(num_pools, distinct_pools), pool_size]`` source indices.
  """
  if not 2 <= pool_size <= num_sources:
    raise EstimatorError(f"pool_size must be in [2, q={num_sources}]; got {pool_size}.")
  if num_pools < 1:
    raise EstimatorError(f"num_pools must be >= 1; got {num_pools}.")
  if distinct_pools(num_sources, pool_size) <= num_pools:
    return np.array(list(itertools.combinations(range(num_sources), pool_size)))
  rng = np.random.default_rng(seed)
  return np.stack([rng.choice(num_sources, pool_size, replace=False)
                   for _ in range(num_pools)])


def subpool_stability(scores: Any, truth: Any, *, pool_size: int = 10,
                      num_pools: int = 100, seed: int = 0) -> dict[str, Any]:
  """Weighted tau of a score over random source sub-pools (Agostinelli et al.).

  Args:
    scores: ``[q]``.
    truth: ``[q]``.
    pool_size: sources per sub-pool.
    num_pools: number of sub-pools.
    seed: seed of :func:`subpool_indices`.

  Returns:
    ``mean``, ``sd`` (ddof=0), ``median`` of the finite weighted taus,
    ``frac_positive``, ``top1_hit_mean`` (expected), ``regret_mean``,
    ``num_undefined`` (pools where tau is nan) and ``taus`` ``[num_pools]``.
  """
  s, t = _check_pair(scores, truth)
  pools = subpool_indices(s.size, pool_size, num_pools, seed)
  taus, hits, regrets = [], [], []
  for p in pools:
    st = rank_statistics(s[p], t[p])
    taus.append(st["weighted_tau"])
    hits.append(st["top1_hit"])
    regrets.append(st["regret"])
  taus = np.asarray(taus)
  fin = taus[np.isfinite(taus)]
  nan = float("nan")
  return {
      "pool_size": pool_size, "num_pools": int(len(pools)),
      "exhaustive": bool(len(pools) == distinct_pools(s.size, pool_size)),
      "mean": float(fin.mean()) if fin.size else nan,
      "sd": float(fin.std()) if fin.size else nan,
      "median": float(np.median(fin)) if fin.size else nan,
      "frac_positive": float((fin > 0).mean()) if fin.size else nan,
      "top1_hit_mean": float(np.mean(hits)),
      "regret_mean": float(np.mean(regrets)),
      "num_undefined": int(taus.size - fin.size),
      "taus": taus,
  }


def subpool_table(method_scores: Mapping[str, Any], truth: Any, *,
                  pool_size: int = 10, num_pools: int = 100,
                  seed: int = 0) -> tuple[list[str], np.ndarray]:
  """Weighted tau of every method on the *same* random sub-pools.

  Returns:
    ``(names, taus)`` with ``taus`` ``[num_pools, num_methods]``; feed
    ``taus[None]`` to :func:`setup_stability_score` to get the stability of the
    method ranking to the choice of source pool.
  """
  names = list(method_scores)
  if not names:
    raise EstimatorError("method_scores is empty.")
  cols = [subpool_stability(method_scores[n], truth, pool_size=pool_size,
                            num_pools=num_pools, seed=seed)["taus"] for n in names]
  return names, np.stack(cols, axis=1)


def _graph_stability(outcomes: np.ndarray) -> float:
  """nanmean of Kendall tau over all pairs of varying settings (rows)."""
  taus = []
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for i, j in itertools.combinations(range(outcomes.shape[0]), 2):
      taus.append(float(sps.kendalltau(outcomes[i], outcomes[j]).statistic))
  taus = np.asarray(taus)
  return float(np.nanmean(taus)) if np.any(np.isfinite(taus)) else float("nan")


def setup_stability_score(outcomes: Any) -> float:
  """Setup Stability (SS) score of Agostinelli et al. (ECCV 2022).

  Follows google-research ``stable_transfer/transferability/results_analysis/
  setup_stability_score.py``: an experimental setup has three components (e.g.
  evaluation measure, target data set, source pool). Fix two, vary the third.
  Within one fixed group, each varying setting gives a vector of evaluation-measure
  scores, one per transferability metric (e.g. the weighted tau of each metric);
  the group's score is the nanmean of ``scipy.stats.kendalltau`` over all pairs of
  settings (do the metrics come out in the same order?). The SS score is the
  nanmean over fixed groups. 1 = the metric ranking never changes; about 0 = it
  is random from one setting to the next.

  Args:
    outcomes: ``[num_fixed, num_varying, num_metrics]`` (or ``[num_varying,
      num_metrics]`` for a single fixed group): the evaluation-measure score of
      each metric in each setup.

  Returns:
    The SS score (nan when every pair is undefined).
  """
  o = np.asarray(outcomes, dtype=np.float64)
  if o.ndim == 2:
    o = o[None]
  if o.ndim != 3:
    raise EstimatorError(f"outcomes must be [num_fixed, num_varying, num_metrics]; "
                         f"got shape {o.shape}.")
  if o.shape[1] < 2 or o.shape[2] < 2:
    raise EstimatorError(
        f"SS score needs >= 2 varying settings and >= 2 metrics; got shape {o.shape}.")
  groups = np.asarray([_graph_stability(g) for g in o])
  return float(np.nanmean(groups)) if np.any(np.isfinite(groups)) else float("nan")


def setup_stability_score_from_records(
    records: Sequence[Mapping[str, Any]], *, varying: str, fixing: Sequence[str],
    metric_key: str = "metric", value_key: str = "score") -> float:
  """:func:`setup_stability_score` from long-format records (one row per result).

  Each record has the metric name (``metric_key``), the setup components named in
  ``varying`` and ``fixing``, and the evaluation-measure score (``value_key``).
  Unlike the reference code, which relies on the row order inside each group, the
  metric vectors are aligned by metric name; a varying setting that lacks some
  metric is an error.

  Returns:
    The SS score.
  """
  if not records:
    raise EstimatorError("records is empty.")
  fixing = tuple(fixing)
  metrics = sorted({str(r[metric_key]) for r in records})
  groups: dict[tuple, dict[Any, dict[str, float]]] = {}
  for r in records:
    key = tuple(r[f] for f in fixing)
    cell = groups.setdefault(key, {}).setdefault(r[varying], {})
    m = str(r[metric_key])
    if m in cell:
      raise EstimatorError(f"Duplicate record for metric {m!r} at {fixing}={key}, "
                           f"{varying}={r[varying]!r}.")
    cell[m] = float(r[value_key])
  scores = []
  for key, by_setting in groups.items():
    rows = []
    for setting, cell in by_setting.items():
      missing = [m for m in metrics if m not in cell]
      if missing:
        raise EstimatorError(f"Setup {fixing}={key}, {varying}={setting!r} lacks "
                             f"metrics {missing}; every setup needs every metric.")
      rows.append([cell[m] for m in metrics])
    if len(rows) >= 2:
      scores.append(_graph_stability(np.asarray(rows)))
  scores = np.asarray(scores)
  return float(np.nanmean(scores)) if np.any(np.isfinite(scores)) else float("nan")
