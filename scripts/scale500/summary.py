"""One figure and table for the 500-source experiments (Fig. 6 and Fig. 10 at the paper's scale).

  python scripts/scale500/summary.py OUT_PREFIX NAME=WORKDIR [NAME=WORKDIR ...]

For each finished study workdir (transfer.json + scores/split_*.json) and each method: the
Spearman correlation of the method's score (averaged over splits, as the study does) with
the mean fine-tuned AUC, a 95% percentile bootstrap interval over sources (1,000 resamples,
seed 0), and the ground truth's own ceiling (split-half Spearman of the runs). Writes
OUT_PREFIX.csv, OUT_PREFIX.md and OUT_PREFIX.png.
"""
import glob
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats as sps

from transferjax import io as tio
from transferjax.evaluation import stats


def spearman_with_ci(score, truth, rng, n_boot=1000):
  rho = sps.spearmanr(score, truth).statistic
  idx = rng.integers(0, len(truth), size=(n_boot, len(truth)))  # sources, with replacement
  boots = [sps.spearmanr(score[i], truth[i]).statistic for i in idx]
  lo, hi = np.nanpercentile(boots, [2.5, 97.5])
  return float(rho), float(lo), float(hi)


def study_rows(name, wd):
  t = tio.read_json(os.path.join(wd, "transfer.json"))
  auc = np.asarray(t["auc"], float)  # [q, seeds, splits]
  truth = auc.reshape(auc.shape[0], -1).mean(1)
  ceiling = stats.reliability(auc)["split_half"]["spearman"]
  files = sorted(glob.glob(os.path.join(wd, "scores", "split_*.json")))
  scores = [tio.read_json(p)["scores"] for p in files][:auc.shape[2]]
  rows = []
  for m in scores[0]:
    s = np.mean([np.asarray(d[m], float) for d in scores], 0)
    rho, lo, hi = spearman_with_ci(s, truth, np.random.default_rng(0))
    rows.append({"study": name, "method": m, "spearman": rho, "ci_low": lo, "ci_high": hi,
                 "ceiling": ceiling, "num_sources": len(truth),
                 "num_splits": auc.shape[2], "num_seeds": auc.shape[1]})
  return rows


def main(argv):
  out = argv[1]
  studies = [a.split("=", 1) for a in argv[2:]]
  rows = [r for name, wd in studies for r in study_rows(name, wd)]
  tio.write_csv(out + ".csv", rows)
  names = [n for n, _ in studies]
  methods = list(dict.fromkeys(r["method"] for r in rows))
  by = {(r["study"], r["method"]): r for r in rows}
  md = ["| method | " + " | ".join(f"{n}: Spearman (95% CI)" for n in names) + " |",
        "|---|" + "---|" * len(names)]
  for m in methods:
    md.append(f"| {m} | " + " | ".join(
        f"{by[n, m]['spearman']:+.3f} ({by[n, m]['ci_low']:+.3f}..{by[n, m]['ci_high']:+.3f})"
        for n in names) + " |")
  md.append("| (ceiling: split-half of the truth) | " + " | ".join(
      f"{by[n, methods[0]]['ceiling']:.3f}" for n in names) + " |")
  md = "\n".join(md) + "\n"
  tio.write_text(out + ".md", md)
  fig, ax = plt.subplots(figsize=(10, 5))
  width = 0.8 / len(names)
  x = np.arange(len(methods))
  for k, n in enumerate(names):
    r = [by[n, m] for m in methods]
    y = np.array([v["spearman"] for v in r])
    err = np.array([[v["spearman"] - v["ci_low"] for v in r], [v["ci_high"] - v["spearman"] for v in r]])
    ax.bar(x + (k - (len(names) - 1) / 2) * width, y, width, yerr=err, capsize=2,
           label=f"{n} (ceiling {r[0]['ceiling']:.2f})")
  ax.axhline(0, color="k", lw=0.8)
  top = max(r["ci_high"] for r in rows)
  ax.set_ylim(top=top + 0.12)  # room for the legend above the bars
  ax.set_xticks(x, methods, rotation=60, ha="right")
  ax.set_ylabel("Spearman with fine-tuned AUC (95% bootstrap CI)")
  ax.set_title(f"Ranking {rows[0]['num_sources']} sources before transfer")
  ax.legend(loc="upper right", ncol=len(names))
  fig.tight_layout()
  tio.save_figure(fig, out + ".png")
  print(md)


if __name__ == "__main__":
  main(sys.argv)
