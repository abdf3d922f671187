"""Seconds to score q sources with k-NN CMI: JAX brute force vs cKDTree.

Both sides compute the same class-aware Frenzel-Pompe estimate (JAX
`cmi_knn_many`, float32; `estimators.knn_reference.cmi_knn_kdtree`, float64) on
the same data in the same run; each JSON line reports both times, the speed
ratio and the largest absolute difference between the answers.

  python -m benchmarks.score                 # q=4, n in {1000, 5000},
                                             # dF in {50, 200}, max+euclidean
  python -m benchmarks.score --n 1000 --dims 50 --q 2   # smoke run, ~10 s
  python -m benchmarks.score --bias   # high-dim bias table instead, ~70 s

Expected (2-core CPU): about 8 min in all, almost all of it the cKDTree
reference (225 s for q=4 at n=5000, dF=200, max-norm); JAX alone takes ~15 s.
See docs/notes/estimators.md.
Data: 10 classes, dT=2, F = 0.5 * MF[y] + N(0, I) (signal on 5 random
directions), T = MT[y] + N(0, I).
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from transferjax import io
from transferjax.estimators import cmi_knn_many
from transferjax.estimators import knn_reference as reference


def make_data(seed: int, n: int, d_f: int, q: int, classes: int = 10,
              d_t: int = 2):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, classes, n)
  mt = rng.normal(size=(classes, d_t))
  t = mt[y] + rng.normal(size=(n, d_t))
  fs = []
  for _ in range(q):
    mf = rng.normal(size=(classes, 5)) @ rng.normal(size=(5, d_f)) / np.sqrt(5)
    fs.append(0.5 * mf[y] + rng.normal(size=(n, d_f)))
  return y, np.stack(fs).astype(np.float32), t.astype(np.float32)


def bench(n: int, d_f: int, q: int, metric: str, k: int, repeats: int,
          with_reference: bool, row_block):
  y, fs, t = make_data(0, n, d_f, q)
  run = lambda: np.asarray(cmi_knn_many(y, fs, t, k=k, metric=metric,
                                        row_block=row_block))
  t0 = time.perf_counter()
  jax_vals = run()
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax_vals = run()
    times.append(time.perf_counter() - t0)
  row = {"n": n, "d_f": d_f, "d_t": 2, "classes": 10, "q": q, "k": k,
         "metric": metric, "backend": jax.default_backend(),
         "jax_s": min(times), "jax_first_call_s": first,
         "jax_values": [round(float(v), 6) for v in jax_vals]}
  if with_reference:
    t0 = time.perf_counter()
    ref_vals = reference.cmi_knn_kdtree_many(y, fs, t, k=k, metric=metric)
    row["kdtree_s"] = time.perf_counter() - t0
    row["speedup"] = row["kdtree_s"] / row["jax_s"]
    row["max_abs_diff"] = float(np.max(np.abs(ref_vals - jax_vals)))
  return row


def binary_data(seed, n, d_f, d_t, df2, dt2):
  """Y ~ Bern(1/2); F, T | Y Gaussian, class signal spread over all columns.

  Truth: g(df2 + dt2) - g(dt2) (two-Gaussian-mixture closed form; 0.2770 for (4, 1)).
  """
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, n)
  s = (2 * y - 1)[:, None]
  f = rng.normal(size=(n, d_f)) + s * 0.5 * np.sqrt(df2 / d_f)
  t = rng.normal(size=(n, d_t)) + s * 0.5 * np.sqrt(dt2 / d_t)
  return y, f.astype(np.float32), t.astype(np.float32)


def bias_table(seeds: int = 3, n: int = 1000, p: int = 16):
  """Mean/sd of each estimator vs dF at fixed signal (truth 0 or 0.2770)."""
  from transferjax.estimators import cmi_binned, cmi_knn, reduce_dim
  for d_f in (2, 50, 200):
    for df2 in (0, 4):
      vals = {}
      for s in range(seeds):
        y, f, t = binary_data(s, n, d_f, 2, df2, 1)
        fr = np.asarray(reduce_dim(f, p)) if d_f > p else f
        for name, fn in [
            ("max", lambda: cmi_knn(y, f, t)),
            ("euclidean", lambda: cmi_knn(y, f, t, metric="euclidean")),
            ("binned_pca1", lambda: cmi_binned(y, f, t)),
            (f"pca{p}_max", lambda: cmi_knn(y, fr, t)),
            (f"pca{p}_euclidean", lambda: cmi_knn(y, fr, t,
                                                  metric="euclidean"))]:
          vals.setdefault(name, []).append(float(fn()))
      row = {"n": n, "d_f": d_f, "d_t": 2, "df2": df2, "dt2": 1,
             "seeds": seeds}
      for name, v in vals.items():
        row[name] = [round(float(np.mean(v)), 4), round(float(np.std(v)), 4)]
      yield row


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--q", type=int, default=4, help="sources per call")
  p.add_argument("--n", type=int, nargs="+", default=[1000, 5000])
  p.add_argument("--dims", type=int, nargs="+", default=[50, 200])
  p.add_argument("--metrics", nargs="+", default=["max", "euclidean"])
  p.add_argument("--k", type=int, default=3)
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--row_block", type=int, default=None,
                 help="rows per block (default: auto by memory budget)")
  p.add_argument("--no_reference", action="store_true")
  p.add_argument("--out", default=None, help="also write JSON lines here")
  p.add_argument("--bias", action="store_true",
                 help="print the high-dimension bias table instead")
  args = p.parse_args(argv)
  lines = []
  if args.bias:
    for row in bias_table():
      lines.append(json.dumps(row))
      print(lines[-1], flush=True)
    if args.out:
      io.write_text(args.out, "\n".join(lines) + "\n")
    return
  for n in args.n:
    for d_f in args.dims:
      for metric in args.metrics:
        row = bench(n, d_f, args.q, metric, args.k, args.repeats,
                    not args.no_reference, args.row_block)
        lines.append(json.dumps(row))
        print(lines[-1], flush=True)
  if args.out:
    io.write_text(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
  main()
