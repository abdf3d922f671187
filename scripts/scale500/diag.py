"""Transfer-matters diagnostic and method tables of a finished study workdir.

  python scripts/scale500/diag.py WORKDIR [REFERENCE_evaluation.json]

Also writes WORKDIR/diagnostic.json: the library's registered diagnostic
(`diagnostic.transfer_matters`) and, with 2+ splits, the split-level reliability.
"""
import json, os, sys
import numpy as np
from transferjax import io as tio
from transferjax.evaluation import diagnostic, stats
wd, ref = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
t = json.load(open(f"{wd}/transfer.json"))
auc = np.asarray(t["auc"], float)            # [q, seeds, splits]
nt = np.asarray(t["no_transfer_runs"], float)  # [seeds, splits]
d = diagnostic.transfer_matters(auc, nt)
d["split_level"] = stats.split_level_reliability(auc)
d["informative_splits"] = (diagnostic.is_informative(
    d["best_gain"], d["noise_se"], d["split_level"]["spearman_brown"])
    if d["split_level"]["num_splits"] >= 2 else None)
print(diagnostic.format_line(d))
print(f"split-level reliability: {d['split_level']}; informative by it: {d['informative_splits']}")
tio.write_json(os.path.join(wd, "diagnostic.json"), d)
q = auc.shape[0]; runs = auc.reshape(q, -1); ntr = nt.ravel(); R = runs.shape[1]
mean = runs.mean(1); ntm = ntr.mean()
best = int(np.argmax(mean))
se = lambda x: x.std(ddof=1) / np.sqrt(x.size)
print(f"sources {q}, runs/source {R}; no-transfer {ntm:.4f} +- {ntr.std(ddof=1):.4f} (sd over {ntr.size} runs)")
print(f"source mean AUC: mean {mean.mean():.4f}, sd {mean.std(ddof=1):.4f}, min {mean.min():.4f}, max {mean.max():.4f}")
print(f"best source {best}: {mean[best]:.4f}; gain over no-transfer {mean[best]-ntm:+.4f} "
      f"(SE {np.sqrt(se(runs[best])**2 + se(ntr)**2):.4f}; selected on the same runs, biased up)")
# Selection-free: pick the best on run a, measure it on run b (and vice versa).
if R >= 2:
  g = []
  for a in range(R):
    b = [r for r in range(R) if r != a]
    pick = int(np.argmax(runs[:, a]))
    g.append(runs[pick, b].mean() - ntr[b].mean() if ntr.size == R else runs[pick, b].mean() - ntm)
  print(f"cross-run best-source gain (pick on one seed, measure on the other): "
        + ", ".join(f"{x:+.4f}" for x in g) + f"; mean {np.mean(g):+.4f}")
  top = np.argsort(-runs[:, 0])[:10]
  print(f"top-10 on seed 0, measured on the other runs: {runs[top][:, 1:].mean():.4f} vs no-transfer {ntm:.4f}")
print(f"negative-transfer sources (mean below no-transfer mean): {(mean < ntm).sum()} of {q}")
gain = runs - ntr.mean()
z = gain.mean(1) / (runs.std(1, ddof=1) / np.sqrt(R) + 1e-12)
print(f"sources more than 2 SE above no-transfer: {(z > 2).sum()}, below: {(z < -2).sum()}")
ev = json.load(open(f"{wd}/evaluation.json"))
rel = ev["reliability"] or {}
print(f"reliability: spread {rel.get('spread'):.4f}, noise SE {rel.get('noise_se'):.4f}, "
      f"spread/SE {rel.get('spread_to_noise_se'):.2f}, split-half {rel.get('split_half')}, "
      f"Spearman-Brown {rel.get('spearman_brown')}, ceiling {ev['ceiling']}, degenerate {ev['degenerate']}")
print(f"seconds {ev.get('seconds')}")
r = json.load(open(ref)) if ref else None
print("| method | w-tau | Spearman | Spearman p | top-1 | top-3 | regret | sub-pool w-tau (100 x 10) |" + (" 20 sources: w-tau / Spearman |" if r else ""))
print("|---|---|---|---|---|---|---|---|" + ("---|" if r else ""))
c = ev["ceiling"] or {}
print(f"| (ceiling) | {c.get('weighted_tau', float('nan')):.3f} | {c.get('spearman', float('nan')):.3f} | | | | | |"
      + (f" {r['ceiling']['weighted_tau']:.3f} / {r['ceiling']['spearman']:.3f} |" if r else ""))
for m, s in ev["methods"].items():
  sp = s.get("subpool") or {}
  sub = f"{sp.get('mean', float('nan')):.3f} +- {sp.get('sd', float('nan')):.3f}" if sp else ""
  rr = r["methods"].get(m) if r else None
  print(f"| {m} | {s['weighted_tau']:.3f} | {s['spearman']:.3f} | {s['spearman_p']:.2g} | {s['top1_hit']:.0f} | "
        f"{s['top3_hit']:.0f} | {s['regret']:.4f} | {sub} |"
        + (f" {rr['weighted_tau']:.3f} / {rr['spearman']:.3f} |" if rr else (" |" if r else "")))
# Same zoo, 20 sources: random 20-source sub-pools of the 500 (the 20-source experiment's
# scale), so "is 500 clearer than 20" is answered on one zoo and one ground truth.
import glob
import scipy.stats as sps
sc = [json.load(open(p))["scores"] for p in sorted(glob.glob(f"{wd}/scores/split_*.json"))]
if sc:
  truth = mean
  rng = np.random.default_rng(0)
  pools = [rng.choice(q, 20, replace=False) for _ in range(200)]
  print("\n| method | 500: Spearman | 20-source sub-pools (200): Spearman mean +- sd | w-tau mean +- sd | share with Spearman > 0 |")
  print("|---|---|---|---|---|")
  for m in ev["methods"]:
    s = np.mean([np.asarray(d[m], float) for d in sc], 0)
    rho = np.array([sps.spearmanr(s[p], truth[p]).statistic for p in pools])
    wt = np.array([sps.weightedtau(s[p], truth[p]).statistic for p in pools])
    print(f"| {m} | {ev['methods'][m]['spearman']:.3f} | {np.nanmean(rho):.3f} +- {np.nanstd(rho):.3f} | "
          f"{np.nanmean(wt):.3f} +- {np.nanstd(wt):.3f} | {np.nanmean(rho > 0):.2f} |")
