"""Does the choice of source matter on this target? The transfer-matters diagnostic.

A ranking can only be judged where sources differ by more than the noise of
the ground truth and some source helps. From the fine-tuning runs
``auc[q, seeds, splits]`` (AUC or accuracy: any higher-is-better score) and the
from-scratch runs ``no_transfer[seeds, splits]`` it reports:

* ``best_gain``: the best source's mean minus the no-transfer mean, with a
  t-interval over the paired runs (same seed and split), and
  ``best_gain_heldout``: the gain of the source that is best on one half of the
  runs, measured on the other half (no winner's curse), averaged over halvings;
* ``worst_gain`` and the number of sources above / below no transfer;
* ``spread`` across source means, ``noise_se`` (the standard error of one
  source's mean) and their ratio;
* ``reliability``: the split-half Spearman of the per-source means stepped up
  by Spearman-Brown to the full number of runs (``split_half`` is the raw one).

``informative`` is ``best_gain > 2 * noise_se and reliability >= 0.8``: some
source helps by more than the noise, and the ground truth reproduces its own
order. The numbers are always reported beside the label.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps

from transferjax.errors import EstimatorError
from transferjax.evaluation import stats

MIN_RELIABILITY = 0.8
GAIN_IN_SE = 2.0


def is_informative(best_gain: float, noise_se: float, reliability: float) -> bool:
  """The rule: ``best_gain > GAIN_IN_SE * noise_se`` and ``reliability >=
  MIN_RELIABILITY`` (a nan reliability fails)."""
  return bool(best_gain > GAIN_IN_SE * noise_se and np.isfinite(reliability)
              and reliability >= MIN_RELIABILITY)


def transfer_matters(auc: Any, no_transfer: Any, *, num_halvings: int = 50,
                     seed: int = 0) -> dict[str, Any]:
  """The diagnostic dict described in the module docstring.

  Args:
    auc: ``[q, S, P]`` (or ``[q, R]``) fine-tuned scores per source and run.
    no_transfer: ``[S, P]`` (or ``[R]``) from-scratch scores, same runs.
    num_halvings: random halvings of the runs (reliability, held-out gain).
    seed: NumPy seed of the halvings.
  """
  a = np.asarray(auc, np.float64)
  q = a.shape[0]
  runs = a.reshape(q, -1)
  nt = np.asarray(no_transfer, np.float64).reshape(-1)
  if nt.shape[0] != runs.shape[1]:
    raise EstimatorError(f"no_transfer has {nt.shape[0]} runs but auc has "
                         f"{runs.shape[1]} per source; they must be the same runs.")
  r_total = runs.shape[1]
  rel = stats.reliability(runs, num_halvings=num_halvings, seed=seed)
  means = runs.mean(1)
  best = int(np.argmax(means))
  gains = runs[best] - nt
  gain = float(gains.mean())
  if r_total >= 2:
    half = float(sps.t.ppf(0.975, r_total - 1) * gains.std(ddof=1) / math.sqrt(r_total))
  else:
    half = float("nan")
  rng = np.random.default_rng(seed)
  held = []
  for _ in range(num_halvings if r_total >= 2 else 0):
    perm = rng.permutation(r_total)
    h = r_total // 2
    pick = int(np.argmax(runs[:, perm[:h]].mean(1)))
    held.append(float((runs[pick, perm[h:]] - nt[perm[h:]]).mean()))
  nt_mean = float(nt.mean())
  reliability = float(rel["spearman_brown"])
  noise_se = float(rel["noise_se"])
  informative = is_informative(gain, noise_se, reliability)
  return {
      "best_source": best, "best_gain": gain,
      "best_gain_ci": [gain - half, gain + half],
      "best_gain_heldout": float(np.mean(held)) if held else float("nan"),
      "worst_gain": float(means.min() - nt_mean),
      "num_positive": int((means > nt_mean).sum()),
      "num_negative": int((means < nt_mean).sum()),
      "no_transfer_mean": nt_mean, "source_min": float(means.min()),
      "source_max": float(means.max()),
      "spread": float(rel["spread"]), "noise_se": noise_se,
      "spread_to_noise_se": float(rel["spread_to_noise_se"]),
      "gain_to_noise_se": gain / noise_se if noise_se > 0 else float("inf"),
      "split_half": float(rel["split_half"]["spearman"]),
      "reliability": reliability, "num_runs": int(r_total),
      "informative": informative,
      "rule": (f"best_gain > {GAIN_IN_SE:g} * noise_se and Spearman-Brown "
               f"reliability >= {MIN_RELIABILITY}"),
  }


def format_line(d: dict[str, Any], metric: str = "AUC") -> str:
  """One line for logs and the demo."""
  lo, hi = d["best_gain_ci"]
  return (f"transfer matters? {'YES' if d['informative'] else 'no'}: best-source gain "
          f"{d['best_gain']:+.4f} {metric} (95% CI {lo:+.4f}..{hi:+.4f}; held-out "
          f"{d['best_gain_heldout']:+.4f}) = {d['gain_to_noise_se']:.1f} SE; spread "
          f"{d['spread']:.4f} = {d['spread_to_noise_se']:.1f} SE; reliability "
          f"{d['reliability']:.2f} (split-half {d['split_half']:.2f}); "
          f"{d['num_positive']} sources above / {d['num_negative']} below no transfer "
          f"({d['no_transfer_mean']:.4f})")


def verdict_line(evaluation: dict[str, Any]) -> str | None:
  """The one-line verdict of an ``evaluation.json`` dict (None without a
  diagnostic): best-source gain in SE and reliability against their bars."""
  d = evaluation.get("diagnostic")
  if not d:
    return None
  return (f"does the choice of source matter here? best-source gain {d['best_gain']:+.4f} "
          f"{evaluation.get('ground_truth_metric', 'AUC')} = {d['gain_to_noise_se']:.1f} SE "
          f"(needs > {GAIN_IN_SE:g}), ground-truth reliability {d['reliability']:.2f} "
          f"(needs >= {MIN_RELIABILITY:g}): "
          f"{'informative' if d['informative'] else 'NOT informative'}")
