"""GPU checks of equivalence, one JSON line each; exits 1 if a check fails.

1. ``cmi``: the k-NN CMI at HIGHEST precision on the GPU equals the CPU's to 1e-4
   (the estimator must not depend on the backend).
2. ``zoo``: the accelerator fast path of the zoo trainer (vmap over models,
   im2col conv, reshape-max pool, default matmul precision: TF32 on Ampere and
   Hopper) and the same in bf16, against each model trained alone with the plain
   reference step (lax.conv / nn.max_pool, float32 at HIGHEST precision) on a
   small learnable problem. Reports the largest differences of final training
   loss and held-out accuracy, and the rank agreement (Spearman) of the models'
   held-out accuracies: the tolerance under TF32 / bf16 is measured here, not
   assumed. Fails only on NaN or a held-out accuracy difference above 0.25.
   The same for the Pallas conv (``pallas_*``: conv2 as Triton kernels without
   im2col patches) and for both Pallas levers (``pallas_fused_*``: also the conv1
   stage) on GPUs, or wherever ``--conv_impls=im2col,pallas,pallas+fused`` asks
   (off GPU Pallas interprets the kernels: slow).

Run on a machine with a GPU (``benchmarks/gpu_check.sh`` calls it);
``--allow_cpu`` runs it on the CPU as a rehearsal. Not part of the CPU suite.
"""
import functools
import itertools
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from transferjax import estimators as E
from transferjax.models import make_cnn
from transferjax.train import step as step_lib


def _zoo_problem(q, n_train, n_test, classes, seed=0):
  """Per-model tasks of ``classes`` classes: a class template + noise."""
  rng = np.random.default_rng(seed)
  n = n_train + n_test
  images, labels = [], []
  for _ in range(q):
    templates = rng.normal(size=(classes, 20, 20, 1))
    y = rng.integers(0, classes, n)
    images.append(0.35 * templates[y] + rng.normal(size=(n, 20, 20, 1)))
    labels.append(y)
  base = jnp.asarray(np.concatenate(images).astype(np.float32))
  offs = np.arange(q)[:, None] * n
  train = {"idx": (offs + np.arange(n_train)).astype(np.int32),
           "labels": np.stack([l[:n_train] for l in labels]).astype(np.int32),
           "n": np.full((q,), n_train, np.int32),
           "num_classes": np.full((q,), classes, np.int32)}
  test = {"idx": (offs + n_train + np.arange(n_test)).astype(np.int32),
          "labels": np.stack([l[n_train:] for l in labels]).astype(np.int32)}
  return base, train, test


@functools.lru_cache(maxsize=None)
def _programs(conv_impl, pool_impl, dtype, steps):
  """Jitted init / runner / evaluator, built once per configuration."""
  model = make_cnn("lenet20", 10, conv_impl, dtype, pool_impl)
  tx = step_lib.make_optimizer(1e-3)
  return (jax.jit(jax.vmap(step_lib.make_init(model, tx, 20))),
          step_lib.make_multi_step_runner(model, tx, 32, steps, 1, "vmap"),
          step_lib.make_evaluator(model, 64))


def _train_zoo(conv_impl, pool_impl, dtype, precision, base, train, test, steps,
               only=None):
  """Final train loss and held-out accuracy of the stacked models (or of model
  ``only`` alone)."""
  q = train["idx"].shape[0]
  sel = slice(None) if only is None else slice(only, only + 1)
  tasks = {k: jnp.asarray(v[sel]) for k, v in train.items()}
  tasks["num_steps"] = jnp.full((tasks["n"].shape[0],), steps, jnp.int32)
  init, run, evaluate = _programs(conv_impl, pool_impl, dtype, steps)
  init_keys = jax.random.split(jax.random.PRNGKey(1), q)[sel]
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(0), i))(
      jnp.arange(q))[sel]
  with jax.default_matmul_precision(precision):
    state = init(init_keys)
    state, losses = run(state, tasks, keys, jnp.int32(0), base,
                        jnp.ones((tasks["n"].shape[0],), bool))
    n_test = test["idx"].shape[1]
    block = 64  # make_evaluator's eval_batch below.
    pad = -n_test % block
    idx = np.pad(test["idx"][sel], ((0, 0), (0, pad)))
    lab = np.pad(test["labels"][sel], ((0, 0), (0, pad)))
    ev = evaluate(
        state["params"], jnp.asarray(idx), jnp.asarray(lab),
        jnp.full((idx.shape[0],), n_test, jnp.int32), tasks["num_classes"], base)
  return np.asarray(losses[-1]), np.asarray(ev["accuracy"])


def zoo_check(q=8, steps=96, conv_impls=("im2col",)):
  base, train, test = _zoo_problem(q, 256, 256, 4)
  ref_loss, ref_acc = [], []
  for i in range(q):  # Each model alone, plain reference step, float32 HIGHEST.
    l, a = _train_zoo("xla", "flax", "float32", "highest", base, train, test,
                      steps, only=i)
    ref_loss.append(l[0])
    ref_acc.append(a[0])
  ref_loss, ref_acc = np.array(ref_loss), np.array(ref_acc)
  out = {"check": "zoo_equivalence", "device": str(jax.devices()[0]), "models": q,
         "steps": steps, "reference_accuracy": ref_acc.round(4).tolist()}
  ok = True
  prefix = {"im2col": "fast", "pallas": "pallas", "pallas+fused": "pallas_fused"}
  for impl, (suffix, dtype) in itertools.product(
      conv_impls, (("default_precision", "float32"), ("bfloat16", "bfloat16"))):
    name = f"{prefix.get(impl, impl)}_{suffix}"
    conv_impl, _, pool_impl = impl.partition("+")  # "pallas+fused": both levers
    loss, acc = _train_zoo(conv_impl, pool_impl or "reshape", dtype, None, base,
                           train, test, steps)
    rho = stats.spearmanr(acc, ref_acc).statistic if np.ptp(ref_acc) > 0 else None
    out[name] = {"max_abs_final_loss_diff": float(np.max(np.abs(loss - ref_loss))),
                 "max_abs_heldout_acc_diff": float(np.max(np.abs(acc - ref_acc))),
                 "mean_heldout_acc": float(np.mean(acc)),
                 "heldout_acc_spearman": None if rho is None else float(rho),
                 "accuracy": acc.round(4).tolist()}
    ok &= bool(np.all(np.isfinite(loss))) and float(np.max(np.abs(acc - ref_acc))) <= 0.25
  out["reference_mean_heldout_acc"] = float(np.mean(ref_acc))
  out["ok"] = bool(ok)
  print(json.dumps(out), flush=True)
  return ok


def main():
  allow_cpu = "--allow_cpu" in sys.argv[1:]
  asked = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--conv_impls=")]
  conv_impls = (tuple(asked[-1].split(",")) if asked else
                ("im2col", "pallas", "pallas+fused") if jax.default_backend() == "gpu"
                else ("im2col",))
  try:
    gpu = jax.devices("gpu")[0]
  except RuntimeError:
    if not allow_cpu:
      print(json.dumps({"check": "gpu_equivalence", "error": "no GPU visible to JAX"}))
      return 2
    gpu = jax.devices("cpu")[0]
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
  print(json.dumps(out), flush=True)
  with jax.default_device(gpu):
    ok &= zoo_check(conv_impls=conv_impls)
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
