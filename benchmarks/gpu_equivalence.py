"""GPU vs CPU: the k-NN CMI at HIGHEST precision agrees to 1e-4 (estimators.md test 18).

Run on a machine with a GPU (``benchmarks/gpu_check.sh`` calls it); prints one
JSON line and exits 1 if the two disagree. Not part of the CPU test suite.
"""
import json
import sys

import jax
import numpy as np

from transferjax import estimators as E


def main():
  try:
    gpu = jax.devices("gpu")[0]
  except RuntimeError:
    print(json.dumps({"check": "gpu_equivalence", "error": "no GPU visible to JAX"}))
    return 2
  rng = np.random.default_rng(0)
  n, c = 2000, 10
  y = rng.integers(0, c, n)
  f = rng.normal(size=(c, 5))[y] + rng.normal(size=(n, 5))
  f = np.concatenate([f, rng.normal(size=(n, 45))], 1).astype(np.float32)
  t = (rng.normal(size=(c, 2))[y] + rng.normal(size=(n, 2))).astype(np.float32)
  out = {"check": "gpu_equivalence", "device": str(gpu)}
  ok = True
  for metric in ("max", "euclidean"):
    with jax.default_device(jax.devices("cpu")[0]):
      cpu_v = float(E.cmi_knn(y, f, t, metric=metric))
    with jax.default_device(gpu):
      gpu_v = float(E.cmi_knn(y, f, t, metric=metric))
    out[metric] = {"cpu": cpu_v, "gpu": gpu_v, "abs_diff": abs(cpu_v - gpu_v)}
    ok &= abs(cpu_v - gpu_v) < 1e-4
  out["ok"] = bool(ok)
  print(json.dumps(out))
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
