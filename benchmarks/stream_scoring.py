"""Streamed scoring of many large sources: seconds per source per method, peak RSS.

The issue's scale is 500 sources x 5,000 images x 2,048-d features (20 GB as
float32). Features are generated per source, inside the chunk that scores it,
from a seeded generator (``SyntheticSources``: class signal growing with the
source index, plus Gaussian noise; 10-class source logits), so nothing of that
size is ever held. Every method of ``scoring.methods.METHODS`` that applies to
non-zoo sources runs (``source_train_acc``/``source_holdout_acc`` need a zoo).

One JSON object on stdout: ``{"num_sources", "n", "d", "chunk_mb", "chunks",
"peak_rss_gb", "total_s", "output_s_per_source", "s_per_source": {method: s},
"device"}``; ``--repeat_sources A,B,...`` runs one subprocess per count (each its
own peak RSS) and prints a list, to show the peak does not grow with the count.

Commands (2-core CPU):
  python -m benchmarks.stream_scoring --num_sources 8 --n 5000 --d 2048
  python -m benchmarks.stream_scoring --repeat_sources 4,16 --n 5000 --d 2048 \\
      --methods cmi_knn,logme,leep
  python -m benchmarks.stream_scoring --num_sources 1 --per_method  # every method
Smoke (seconds):
  python -m benchmarks.stream_scoring --num_sources 3 --n 200 --d 16
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import jax
import numpy as np

from transferjax.scoring.methods import RankConfig, methods_given
from transferjax.sources.base import SourceGroup, SourceInfo
from transferjax.sources.stream import (PROVIDED, StreamConfig, StreamResult,
                                       plan_chunks, score_streamed)

ZOO_ONLY = ("source_train_acc", "source_holdout_acc")


class SyntheticSources(SourceGroup):
  """``q`` sources of seeded random features ``[N, d]`` and logits ``[N, 10]``."""

  def __init__(self, q: int, labels: np.ndarray, d: int, seed: int = 0):
    self.labels, self.d, self.seed = labels, d, seed
    self.infos = [SourceInfo(name=f"synthetic_{i:04d}", kind="files", num_classes=10)
                  for i in range(q)]

  def output_shapes(self, num_rows):
    return [(self.d, 10)] * len(self)

  def outputs(self, members, images, rows, *, allow_upsample=False):
    out = []
    q = len(self)
    for i in members:
      rng = np.random.default_rng([self.seed, i])
      y = self.labels[rows]
      sep = np.float32(2.0 * i / max(q - 1, 1))
      f = rng.standard_normal((len(rows), self.d), dtype=np.float32)
      f[np.arange(len(rows)), y] += sep
      lg = rng.standard_normal((len(rows), 10), dtype=np.float32)
      lg[np.arange(len(rows)), y] += sep
      out.append((f, lg))
    return out


def _peak_rss_gb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB


def run(num_sources: int, n: int, d: int, methods: list[str], chunk_mb: float,
        seed: int = 0, per_method: bool = False) -> dict:
  rng = np.random.default_rng(seed)
  labels = rng.permutation(np.arange(n) % 2).astype(np.int32)
  t = (labels + 0.8 * rng.standard_normal(n)).astype(np.float32)[:, None]
  folds = np.arange(n) % 5
  group = SyntheticSources(num_sources, labels, d, seed)
  cfg = StreamConfig(chunk_mb=chunk_mb, progress=sys.stderr.isatty())
  chunks = plan_chunks([group], n, cfg)
  t0 = time.time()
  images = np.zeros((n, 1, 1, 1), np.float32)
  if per_method:  # one pass per method, a JSON line each (partial results survive)
    seconds, notes, out_s = {}, {}, 0.0
    for m in methods:
      r = score_streamed([group], images, np.arange(n), labels, t, folds, (m,),
                         RankConfig(seed=seed), cfg, strict=False)
      seconds[m], notes[m], out_s = r.seconds[m], r.notes[m], out_s + r.output_seconds
      print(json.dumps({"method": m, "s_per_source": round(r.seconds[m] / num_sources, 3),
                        "peak_rss_gb": round(_peak_rss_gb(), 3), "failed": r.notes[m][:1]}),
            file=sys.stderr, flush=True)
    res = StreamResult(r.names, {}, notes, seconds, out_s, r.feature_dims)
  else:
    res = score_streamed([group], images, np.arange(n), labels, t, folds, methods,
                         RankConfig(seed=seed), cfg, strict=False)
  total = time.time() - t0
  return {
      "num_sources": num_sources, "n": n, "d": d, "chunk_mb": chunk_mb,
      "chunks": len(chunks), "sources_per_chunk": len(chunks[0].members),
      "peak_rss_gb": round(_peak_rss_gb(), 3), "total_s": round(total, 1),
      "output_s_per_source": round(res.output_seconds / num_sources, 3),
      "s_per_source": {m: round(s / num_sources, 3) for m, s in res.seconds.items()},
      "failed": {m: v[:1] for m, v in res.notes.items() if v},
      "device": jax.devices()[0].device_kind,
  }


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--num_sources", type=int, default=8)
  p.add_argument("--n", type=int, default=5000)
  p.add_argument("--d", type=int, default=2048)
  p.add_argument("--methods", default="all")
  p.add_argument("--chunk_mb", type=float, default=StreamConfig.chunk_mb)
  p.add_argument("--per_method", action="store_true",
                 help="score one method at a time, a JSON line each on stderr")
  p.add_argument("--repeat_sources", default=None,
                 help="comma-separated source counts, one subprocess each")
  a = p.parse_args()
  methods = ([m for m in methods_given(PROVIDED) if m not in ZOO_ONLY]
             if a.methods == "all"
             else a.methods.split(","))
  if a.repeat_sources:
    results = []
    for q in a.repeat_sources.split(","):
      cmd = [sys.executable, "-m", "benchmarks.stream_scoring", "--num_sources", q,
             "--n", str(a.n), "--d", str(a.d), "--methods", ",".join(methods),
             "--chunk_mb", str(a.chunk_mb)]
      out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
      results.append(json.loads(out.strip().splitlines()[-1]))
      print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps(results))
    return
  print(json.dumps(run(a.num_sources, a.n, a.d, methods, a.chunk_mb,
                       per_method=a.per_method)))


if __name__ == "__main__":
  main()
