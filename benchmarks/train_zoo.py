r"""Throughput of the vmapped zoo trainer vs the same step run model after model.

One model-step = one Adam step of one lenet20 model on a batch of 64. Reference
configuration: head of 20 classes, Adam 1e-3, batch 64, 2,048 samples per model,
3 epochs (96 steps per model). Prints one JSON line per configuration:

  {"mode": "vmap" | "sequential", "conv_impl", "num_models", "steps_per_model",
   "model_steps_per_s", "compile_s", "run_s", "peak_rss_mb", ...}

Command (a few minutes on 2 CPU cores; numbers in docs/notes/zoo.md):

  python -m benchmarks.train_zoo --num_models=1,8,64 --epochs=1

``--num_models=512`` where memory allows. ``sequential`` runs at most
``--seq_max_models`` models (its per-model-step cost does not depend on the zoo
size; the line says how many it ran). ``peak_rss_mb`` is the process's peak so far
(``ru_maxrss``), so it only grows down the list.
"""
from __future__ import annotations

import json
import math
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from transferjax.models import make_cnn
from transferjax.train import step as step_lib

FLAGS = flags.FLAGS
flags.DEFINE_list("num_models", ["1", "8", "64"], "Zoo sizes.")
flags.DEFINE_list("conv_impl", ["im2col", "patches", "xla"], "Convolution implementations.")
flags.DEFINE_list("steps_per_call", ["32"], "lax.scan lengths of the vmapped runner "
                  "(1 = a Python loop of jitted single steps).")
flags.DEFINE_integer("unroll", 1, "lax.scan unroll.")
flags.DEFINE_integer("samples", 2048, "Training samples per model.")
flags.DEFINE_integer("epochs", 3, "Epochs per model.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_integer("num_classes", 20, "Head width (every task uses all).")
flags.DEFINE_integer("seq_max_models", 8, "Most models the sequential loop runs.")
flags.DEFINE_bool("sequential", True, "Also time the sequential loop.")


def _rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _problem(q: int, samples: int, num_classes: int, seed: int = 0):
  """A base array of ``2 * samples`` random images; each model indexes
  ``samples`` random rows of it with random labels."""
  rng = np.random.default_rng(seed)
  base = jnp.asarray(rng.random((2 * samples, 20, 20, 1), dtype=np.float32))
  tasks = {"idx": np.stack([rng.permutation(2 * samples)[:samples]
                            for _ in range(q)]).astype(np.int32),
           "labels": rng.integers(0, num_classes, (q, samples)).astype(np.int32),
           "n": np.full((q,), samples, np.int32),
           "num_classes": np.full((q,), num_classes, np.int32)}
  return base, tasks


def bench_vmap(q, conv_impl, steps_per_call, total_steps):
  model = make_cnn("lenet20", FLAGS.num_classes, conv_impl)
  tx = step_lib.make_optimizer(1e-3)
  base, tasks = _problem(q, FLAGS.samples, FLAGS.num_classes)
  tasks["num_steps"] = np.full((q,), total_steps, np.int32)
  tasks = jax.tree.map(jnp.asarray, tasks)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(0), i))(
      jnp.arange(q))
  state = jax.jit(jax.vmap(step_lib.make_init(model, tx, 20)))(
      jax.random.split(jax.random.PRNGKey(1), q))
  runner = step_lib.make_multi_step_runner(model, tx, FLAGS.batch_size,
                                           steps_per_call, FLAGS.unroll)
  active = jnp.ones((q,), bool)
  t = time.time()
  compiled = runner.lower(state, tasks, keys, jnp.int32(0), base, active).compile()
  compile_s = time.time() - t
  calls = math.ceil(total_steps / steps_per_call)
  t = time.time()
  for c in range(calls):
    state, losses = compiled(state, tasks, keys, jnp.int32(c * steps_per_call),
                             base, active)
  losses.block_until_ready()
  run_s = time.time() - t
  return {"mode": "vmap", "conv_impl": conv_impl, "num_models": q,
          "steps_per_model": total_steps, "steps_per_call": steps_per_call,
          "unroll": FLAGS.unroll, "model_steps_per_s": q * total_steps / run_s,
          "compile_s": compile_s, "run_s": run_s, "peak_rss_mb": _rss_mb(),
          "final_loss_mean": float(jnp.mean(losses[-1]))}


def bench_sequential(q, conv_impl, total_steps):
  model = make_cnn("lenet20", FLAGS.num_classes, conv_impl)
  tx = step_lib.make_optimizer(1e-3)
  ran = min(q, FLAGS.seq_max_models)
  base, tasks = _problem(ran, FLAGS.samples, FLAGS.num_classes)
  train_step = step_lib.make_train_step(model, tx)
  length, b = FLAGS.samples, FLAGS.batch_size

  def one_step(state, idx, labels, n, num_classes, key, t, images):
    pos, w = step_lib.sample_batch(key, t, n, length, b)
    return train_step(state, idx[pos], images, labels[pos], num_classes,
                      jax.random.fold_in(key, t), jnp.bool_(True), w)

  step = jax.jit(one_step, donate_argnums=0)
  init = jax.jit(step_lib.make_init(model, tx, 20))
  args0 = [jnp.asarray(tasks[k][0]) for k in ("idx", "labels", "n", "num_classes")]
  state = init(jax.random.PRNGKey(0))
  t = time.time()
  compiled = step.lower(state, *args0, jax.random.PRNGKey(0), jnp.int32(0),
                        base).compile()
  compile_s = time.time() - t
  t = time.time()
  for i in range(ran):  # The baseline being measured: a loop over models.
    state = init(jax.random.PRNGKey(i))
    args = [jnp.asarray(tasks[k][i]) for k in ("idx", "labels", "n", "num_classes")]
    key = jax.random.fold_in(jax.random.PRNGKey(0), i)
    for s in range(total_steps):
      state, metrics = compiled(state, *args, key, jnp.int32(s), base)
  metrics["loss"].block_until_ready()
  run_s = time.time() - t
  return {"mode": "sequential", "conv_impl": conv_impl, "num_models": q,
          "models_run": ran, "steps_per_model": total_steps,
          "model_steps_per_s": ran * total_steps / run_s, "compile_s": compile_s,
          "run_s": run_s, "peak_rss_mb": _rss_mb()}


def main(argv):
  del argv
  total_steps = FLAGS.epochs * math.ceil(FLAGS.samples / FLAGS.batch_size)
  print(json.dumps({"devices": [str(d) for d in jax.devices()],
                    "samples": FLAGS.samples, "epochs": FLAGS.epochs,
                    "batch_size": FLAGS.batch_size,
                    "num_classes": FLAGS.num_classes}), flush=True)
  for conv_impl in FLAGS.conv_impl:
    for q in (int(x) for x in FLAGS.num_models):
      for spc in (int(x) for x in FLAGS.steps_per_call):
        print(json.dumps(bench_vmap(q, conv_impl, spc, total_steps)), flush=True)
      if FLAGS.sequential:
        print(json.dumps(bench_sequential(q, conv_impl, total_steps)), flush=True)


if __name__ == "__main__":
  app.run(main)
