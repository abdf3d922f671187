"""Interim evaluation of a 500-source study whose ground truth is still running: the
sources whose seed-0 fine-tuning chunks are finished, against split-0 scores."""
import glob, json, os, sys
import numpy as np
import scipy.stats as sps
from transferjax import io as tio
from transferjax.evaluation import figures as figs
from transferjax.evaluation import stats
wd, out = sys.argv[1], sys.argv[2]
auc = {}
for p in sorted(glob.glob(f"{wd}/transfer/split_0_chunks/chunk_*.json")):
  d = json.load(open(p))
  for (i, s), a in zip(d["pairs"], d["auc"]):
    auc[(i, s)] = a
q = 500
src = sorted(i for (i, s) in auc if s == 0 and i < q)
truth = np.array([auc[(i, 0)] for i in src])
nt = json.load(open(f"{wd}/no_transfer_interim.json"))["auc"] if os.path.exists(f"{wd}/no_transfer_interim.json") else None
sc_path = next((p for p in (f"{wd}/scores/split_0.json", f"{wd}/scores_interim.json") if os.path.exists(p)), None)
sc = json.load(open(sc_path))["scores"] if sc_path else {}
print("scores from", sc_path)
res = {"num_sources_with_truth": len(src), "source_ids": [src[0], src[-1]], "seeds": 1, "splits": 1,
       "truth": {"mean": truth.mean(), "sd": truth.std(ddof=1), "min": truth.min(), "max": truth.max()},
       "no_transfer_runs": nt, "methods": {}}
lines = [f"# Interim: {len(src)} of 500 sources (ids {src[0]}..{src[-1]}), fine-tuning seed 0, split 0", ""]
lines.append(f"Source AUC (seed 0): mean {truth.mean():.4f}, sd {truth.std(ddof=1):.4f}, "
             f"min {truth.min():.4f}, max {truth.max():.4f} (source {src[int(np.argmax(truth))]}).")
if nt:
  nt0 = nt[0]
  res["num_negative_seed0"] = int((truth < nt0).sum())
  lines.append(f"No-transfer AUC: seed 0 {nt[0]:.4f}, seed 1 {nt[1]:.4f}. Sources below the seed-0 "
               f"no-transfer net: {(truth < nt0).sum()} of {len(src)}; best-source gain over it "
               f"{truth.max() - nt0:+.4f} (max of {len(src)} single runs: biased up).")
lines += ["", "| method | Spearman | p | w-tau | 20-source sub-pools (200): Spearman mean +- sd | share > 0 |", "|---|---|---|---|---|---|"]
rng = np.random.default_rng(0)
pools = [rng.choice(len(src), 20, replace=False) for _ in range(200)]
for m, v in sc.items():
  s = np.asarray(v, float)[src]
  r = stats.rank_statistics(s, truth)
  rho = np.array([sps.spearmanr(s[p], truth[p]).statistic for p in pools])
  res["methods"][m] = {"spearman": r["spearman"], "spearman_p": r["spearman_p"], "weighted_tau": r["weighted_tau"],
                       "subpool20_spearman_mean": float(np.nanmean(rho)), "subpool20_spearman_sd": float(np.nanstd(rho))}
  lines.append(f"| {m} | {r['spearman']:.3f} | {r['spearman_p']:.2g} | {r['weighted_tau']:.3f} | "
               f"{np.nanmean(rho):.3f} +- {np.nanstd(rho):.3f} | {np.nanmean(rho > 0):.2f} |")
os.makedirs(out, exist_ok=True)
if sc:
  figs.plot_score_vs_auc({m: np.asarray(v, float)[src] for m, v in sc.items()}, truth,
                         float(nt[0]) if nt else float("nan"), os.path.join(out, "fig10_interim_score_vs_auc.png"),
                         title=f"limited-500 interim: {len(src)} sources, seed 0")
tio.write_json(os.path.join(out, "interim.json"), res)
tio.write_text(os.path.join(out, "interim.md"), "\n".join(lines) + "\n")
print("\n".join(lines))
