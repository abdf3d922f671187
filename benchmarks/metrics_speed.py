"""Seconds to score q sources with each metric: JAX (score_sources) vs NumPy.

Setting (defaults): q=500 sources, n=1000 validation images, 200-d features,
2 target classes, 10 source classes for LEEP/NCE. The JAX side is one
``score_sources`` call per metric (float64, lax.map over chunks of
``--batch-size`` vmapped sources); it is timed twice, the first call including
compilation. The NumPy side loops the float64 references of
``transferjax.metrics.reference`` over the first ``--numpy-q`` sources (default
all q) and is scaled to q when fewer. One JSON line per metric:

  {"method", "q", "n", "d", "jax_first_s", "jax_s", "numpy_s", "numpy_q",
   "numpy_s_per_q", "speedup", "max_abs_diff", "device"}

``speedup`` = (numpy seconds per source * q) / jax_s (steady state), and
``max_abs_diff`` compares the two on the sources both scored (NLEEP's
references use a different GMM initialisation, so only its speed compares).

Command (CPU, 2 cores; several minutes at the defaults):
  python -m benchmarks.metrics_speed --q 500 --numpy-q 100
Smoke run (seconds):
  python -m benchmarks.metrics_speed --q 8 --n 200 --d 32
"""
from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from transferjax import metrics as M
from transferjax.io import write_text
from transferjax.metrics import reference as R

ALL = ["leep", "nce", "h_score", "shrinkage_h_score", "logme", "nleep", "gbc",
       "transrate", "sfda", "pactran_gauss", "knn_accuracy"]


def make_inputs(q, n, d, classes, source_classes, seed=0):
  """Synthetic zoo outputs whose informativeness varies over sources."""
  rng = np.random.default_rng(seed)
  y = np.arange(n) % classes
  rng.shuffle(y)
  sep = np.linspace(0.0, 2.0, q, dtype=np.float32)[:, None, None]
  feats = rng.standard_normal((q, n, d), dtype=np.float32)
  feats += sep * np.eye(classes, d, dtype=np.float32)[y][None]
  logits = rng.standard_normal((q, n, source_classes), dtype=np.float32)
  logits[..., :classes] += 2 * sep * np.eye(classes, dtype=np.float32)[y][None]
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  return feats, probs, probs.argmax(-1), y


def run_one(name, feats, probs, preds, y, numpy_q, batch_size):
  q, n, _ = feats.shape
  key = jax.random.key(0)
  half = n // 2
  if name == "leep":
    args, ref = (probs, y), lambda i: R.leep_np(probs[i], y)
  elif name == "nce":
    args, ref = (preds, y), lambda i: R.nce_np(preds[i], y)
  elif name == "knn_accuracy":
    args = ((feats[:, :half], feats[:, half:]), (y[:half], y[half:]))
    ref = lambda i: R.knn_accuracy_np(feats[i, :half], y[:half], feats[i, half:],
                                      y[half:])
  else:
    args = (feats, y)
    ref = lambda i: R.REFERENCES[name](feats[i], y)
  kw = {"key": key} if name == "nleep" else {}

  t = time.perf_counter()
  out = M.score_sources(name, *args, batch_size=batch_size, **kw)
  first = time.perf_counter() - t
  t = time.perf_counter()
  out = M.score_sources(name, *args, batch_size=batch_size, **kw)
  steady = time.perf_counter() - t

  ref(0)   # warm-up: imports (sklearn) and first-call overheads are not timed
  t = time.perf_counter()
  ref_out = np.array([ref(i) for i in range(numpy_q)])
  numpy_s = time.perf_counter() - t
  per_q = numpy_s / numpy_q
  return {
      "method": name, "q": q, "n": n, "d": feats.shape[2],
      "jax_first_s": round(first, 3), "jax_s": round(steady, 3),
      "numpy_s": round(numpy_s, 3), "numpy_q": numpy_q,
      "numpy_s_per_q": round(per_q, 5), "speedup": round(per_q * q / steady, 2),
      "max_abs_diff": float(np.max(np.abs(out[:numpy_q] - ref_out))),
      "device": jax.devices()[0].device_kind,
      "loadavg_1min": round(os.getloadavg()[0], 2),
  }


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--q", type=int, default=500)
  p.add_argument("--n", type=int, default=1000)
  p.add_argument("--d", type=int, default=200)
  p.add_argument("--classes", type=int, default=2)
  p.add_argument("--source-classes", type=int, default=10)
  p.add_argument("--numpy-q", type=int, default=None,
                 help="sources the NumPy loop scores (default q), scaled to q")
  p.add_argument("--batch-size", type=int, default=16)
  p.add_argument("--methods", default=",".join(ALL))
  p.add_argument("--out", default=None, help="also write the JSON lines here")
  a = p.parse_args(argv)
  feats, probs, preds, y = make_inputs(a.q, a.n, a.d, a.classes, a.source_classes)
  numpy_q = min(a.numpy_q or a.q, a.q)
  lines = []
  for name in a.methods.split(","):
    row = run_one(name, feats, probs, preds, y, numpy_q, a.batch_size)
    lines.append(json.dumps(row))
    print(lines[-1], flush=True)
  if a.out:
    write_text(a.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
  main()
