r"""Throughput of the zoo trainer's variants, side by side, interleaved.

One model-step = one Adam step of one lenet20 model on a batch of 64. Reference
configuration (the default flags): head of 20 classes, Adam 1e-3, batch 64, 2,048
samples per model, 3 epochs (96 steps per model).

Every variant trains the same ``--num_models`` models on the same problem. The
work is split into ``--rounds`` rounds and the variants take turns within each
round (so a change in the load of a shared machine hits all of them alike);
over all rounds each variant runs the whole training (``epochs * ceil(samples /
batch)`` steps per model). Prints one JSON line per variant and zoo size:

  {"variant", "conv_impl", "pool_impl", "model_loop", "compute_dtype",
   "num_models", "steps_per_model", "model_steps_per_s" (all rounds),
   "best_round_model_steps_per_s", "cpu_s", "compile_s", "run_s",
   "program_mb", "peak_device_mb", "matmul_precision",
   "ratio_to_first", "peak_rss_mb", "final_loss_mean"}

Variants (``--variants``, first = the ratio's reference):

  base         im2col conv, nn.max_pool, vmap over models (the first zoo trainer)
  pool         im2col, reshape-max pool, vmap               (one lever: pooling)
  map          im2col, reshape-max pool, lax.map over models (+ loop lever)
  xla_vjp_map  xla_vjp conv, reshape-max pool, lax.map       (+ conv lever: the
               default CPU path of the zoo trainer)
  xla_vjp_vmap xla_vjp conv under vmap (grouped convolution)
  xla_vjp_map_sharded  xla_vjp_map with the model axis split over every local
               device by shard_map: on a CPU one device per core (set by
               ``transferjax.cli.use_cpu_cores``, as every experiments.* entry
               point does), each core looping over its share of the models.
               This is the zoo trainer's default CPU path.
  xla_vjp_map_sharded_before  xla_vjp_map_sharded with the step as it was
               before docs/notes/zoospeed.md (benchmarks/zoo_before.py: the
               kernel gradient's operand stacked then transposed, the epoch
               order drawn every step); same numbers, so before vs after
               in one run
  bf16_map     xla_vjp_map in bfloat16 (``compute_dtype``)
  seq_xla      a Python loop over models of one jitted single-model step with
               nn.Conv semantics and nn.max_pool (the plain per-model baseline;
               it runs ``--seq_max_models`` models)
  seq_fast     the same loop with xla_vjp + reshape-max pool
  torch_seq    PyTorch, a loop over ``--seq_max_models`` models (the issue's
               baseline; benchmarks/torch_zoo.py; skipped without torch)

Accelerator variants (all vmap over models, the accelerator path):

  xla_vmap     nn.Conv semantics (lax.conv, autodiff) + nn.max_pool: the naive
               vmapped zoo (grouped convolutions)
  pool_hi      ``pool`` with float32 matmuls at HIGHEST precision (on GPUs the
               default lets XLA use TF32; this is the plain float32 rate)
  bf16_vmap    ``pool`` with bf16 convs/dense (float32 master weights)
  bf16_vjp_vmap  xla_vjp conv under vmap in bf16
  pallas_vmap  ``pool`` with conv2 as Pallas/Triton kernels that never build the
               im2col patches (transferjax/models/pallas_conv.py); GPU only:
               elsewhere Pallas interprets the kernels (only for --dry_run sizes)
  pallas64_vmap, pallas256_vmap  the same with 64 / 256 output rows per program
  bf16_pallas_vmap  pallas_vmap in bf16
  fused_vmap   ``pool`` with conv1 + ReLU + pool1 as one function whose backward
               recomputes conv1 instead of saving its output (pool_impl="fused";
               XLA: 9 FMAs)
  pallas_fused_vmap, bf16_pallas_fused_vmap  Pallas for conv2 *and* the fused
               conv1 stage (pallas_conv_pool.py: conv1's output stays on chip)
  xla_vjp_fused_map_sharded  the CPU default path with the fused conv1 stage

``program_mb`` is the compiled step's own memory (arguments + outputs + XLA
temporaries, from ``Compiled.memory_analysis()``): the device memory one chunk
of ``num_models`` needs, independent of what ran before in the process.

Command (reference configuration, 64 models; ~3 min on this idle 2-core CPU;
``torch_seq`` needs ``pip install torch``):

  python -m benchmarks.train_zoo --num_models=64 --epochs=1 --rounds=4 \
      --variants=xla_vjp_map_sharded,xla_vjp_map,torch_seq,base --seq_max_models=4

GPU (benchmarks/gpu_check.sh runs these): ``--num_models=512
--variants=pool,base,pool_hi,bf16_vmap,torch_seq``.

``peak_rss_mb`` is the process's peak so far (``ru_maxrss``), so it only grows
down the list. Numbers: docs/notes/speed.md.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from jax.sharding import Mesh

from benchmarks import torch_zoo, zoo_before
from transferjax import cli
from transferjax.models import make_cnn, pallas_conv
from transferjax.train import step as step_lib

FLAGS = flags.FLAGS
flags.DEFINE_list("num_models", ["64"], "Zoo sizes.")
flags.DEFINE_list("variants", ["xla_vjp_map_sharded", "xla_vjp_map", "torch_seq",
                               "base"],
                  "Variants to compare (module docstring); the first is the "
                  "reference of ratio_to_first.")
flags.DEFINE_integer("steps_per_call", 8, "lax.scan length of the runner.")
flags.DEFINE_integer("unroll", 1, "lax.scan unroll.")
flags.DEFINE_integer("rounds", 4, "Interleaved rounds the training is split into.")
flags.DEFINE_integer("samples", 2048, "Training samples per model.")
flags.DEFINE_integer("epochs", 3, "Epochs per model.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_integer("num_classes", 20, "Head width (every task uses all).")
flags.DEFINE_integer("seq_max_models", 2, "Models the sequential loops run.")
flags.DEFINE_list("conv_impl", [], "Time a vmap variant '<impl>_vmap' "
                  "(reshape-max pool, float32) per listed conv_impl, and seq_xla "
                  "unless --variants is given too (the older interface of this "
                  "benchmark; benchmarks/gpu_check.sh uses it).")

# name: (conv_impl, pool_impl, model_loop or "seq", compute_dtype)
VARIANTS = {
    "base": ("im2col", "flax", "vmap", "float32"),
    "pool": ("im2col", "reshape", "vmap", "float32"),
    "map": ("im2col", "reshape", "map", "float32"),
    "xla_vjp_map": ("xla_vjp", "reshape", "map", "float32"),
    "xla_vjp_vmap": ("xla_vjp", "reshape", "vmap", "float32"),
    "xla_vjp_map_sharded": ("xla_vjp", "reshape", "map_sharded", "float32"),
    "xla_vjp_map_sharded_before": ("xla_vjp", "reshape", "map_sharded", "float32"),
    "bf16_map": ("xla_vjp", "reshape", "map", "bfloat16"),
    "seq_xla": ("xla", "flax", "seq", "float32"),
    "seq_fast": ("xla_vjp", "reshape", "seq", "float32"),
    "torch_seq": ("torch", "torch", "torch", "float32"),
    "xla_vmap": ("xla", "flax", "vmap", "float32"),
    "pool_hi": ("im2col", "reshape", "vmap", "float32"),
    "bf16_vmap": ("im2col", "reshape", "vmap", "bfloat16"),
    "bf16_vjp_vmap": ("xla_vjp", "reshape", "vmap", "bfloat16"),
    # Pallas (Triton) conv2 without im2col patches: GPU only (interpreted,
    # i.e. very slow, elsewhere); tile sizes swept with TILING.
    "pallas_vmap": ("pallas", "reshape", "vmap", "float32"),
    "pallas64_vmap": ("pallas", "reshape", "vmap", "float32"),
    "pallas256_vmap": ("pallas", "reshape", "vmap", "float32"),
    "bf16_pallas_vmap": ("pallas", "reshape", "vmap", "bfloat16"),
    # conv1 + ReLU + pool1 fused, conv1 recomputed in the backward (pool_impl).
    "fused_vmap": ("im2col", "fused", "vmap", "float32"),
    "pallas_fused_vmap": ("pallas", "fused", "vmap", "float32"),
    "bf16_pallas_fused_vmap": ("pallas", "fused", "vmap", "bfloat16"),
    "xla_vjp_fused_map_sharded": ("xla_vjp", "fused", "map_sharded", "float32"),
}
# Variants compiled under jax.default_matmul_precision(...) (others: default).
PRECISION = {"pool_hi": "highest"}
# Variants built from benchmarks/zoo_before.py (the step before zoospeed.md).
BEFORE = {"xla_vjp_map_sharded_before"}
# Variants traced under pallas_conv.tiling(...) (others: its defaults).
TILING = {"pallas64_vmap": {"tile_rows": 64}, "pallas256_vmap": {"tile_rows": 256}}


def _rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _program_mb(compiled) -> float | None:
  """Arguments + outputs + temporaries of one compiled program, in MB."""
  try:
    m = compiled.memory_analysis()
    total = (m.argument_size_in_bytes + m.output_size_in_bytes
             + m.temp_size_in_bytes - m.alias_size_in_bytes)
    return total / 2**20
  except Exception:  # pylint: disable=broad-except  # Not every backend has it.
    return None


def _peak_device_mb() -> float | None:
  """The device's peak bytes in use so far (accelerators; None on CPU)."""
  try:
    stats = jax.devices()[0].memory_stats()
    return stats["peak_bytes_in_use"] / 2**20 if stats else None
  except Exception:  # pylint: disable=broad-except
    return None


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


class _Stacked:
  """A vmapped / mapped runner over all ``q`` models."""

  def __init__(self, name, q, total_steps):
    conv_impl, pool_impl, loop, dtype = VARIANTS[name]
    model = make_cnn("lenet20", FLAGS.num_classes, conv_impl, dtype, pool_impl)
    tx = step_lib.make_optimizer(1e-3)
    self.base, tasks = _problem(q, FLAGS.samples, FLAGS.num_classes)
    tasks["num_steps"] = np.full((q,), total_steps, np.int32)
    self.tasks = jax.tree.map(jnp.asarray, tasks)
    self.keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(0), i))(
        jnp.arange(q))
    self.state = jax.jit(jax.vmap(step_lib.make_init(model, tx, 20)))(
        jax.random.split(jax.random.PRNGKey(1), q))
    # map_sharded: the trainer's CPU path, the models split over all devices.
    mesh = Mesh(np.array(jax.devices()), ("models",)) if loop == "map_sharded" else None
    before = name in BEFORE
    make_runner = (zoo_before.make_multi_step_runner if before
                   else step_lib.make_multi_step_runner)
    runner = make_runner(
        model, tx, FLAGS.batch_size, FLAGS.steps_per_call, FLAGS.unroll,
        "map" if loop == "map_sharded" else loop, mesh)
    self.active = jnp.ones((q,), bool)
    t = time.time()
    with (jax.default_matmul_precision(PRECISION.get(name, None)),
          pallas_conv.tiling(**TILING.get(name, {})),
          zoo_before.formulation() if before else contextlib.nullcontext()):
      self.run = runner.lower(self.state, self.tasks, self.keys, jnp.int32(0),
                              self.base, self.active).compile()
    self.compile_s = time.time() - t
    self.program_mb = _program_mb(self.run)
    self.t, self.q, self.losses, self.total = 0, q, None, total_steps

  def work(self, steps: int) -> int:
    """Run ``steps`` more steps (whole calls); returns the model-steps taken
    (steps past the models' ``num_steps`` are masked and not counted)."""
    start = self.t
    for _ in range(math.ceil(steps / FLAGS.steps_per_call)):
      if self.t >= self.total:
        break
      self.state, self.losses = self.run(self.state, self.tasks, self.keys,
                                         jnp.int32(self.t), self.base, self.active)
      self.t += FLAGS.steps_per_call
    if self.losses is not None:
      self.losses.block_until_ready()
    return (min(self.t, self.total) - min(start, self.total)) * self.q

  def final_loss(self) -> float:
    return float(jnp.mean(self.losses[-1]))


class _Sequential:
  """A Python loop over models of one jitted single-model step (the baseline)."""

  def __init__(self, name, q, total_steps):
    self.total = total_steps
    conv_impl, pool_impl, _, dtype = VARIANTS[name]
    model = make_cnn("lenet20", FLAGS.num_classes, conv_impl, dtype, pool_impl)
    tx = step_lib.make_optimizer(1e-3)
    self.q = min(q, FLAGS.seq_max_models)
    self.base, tasks = _problem(self.q, FLAGS.samples, FLAGS.num_classes)
    train_step = step_lib.make_train_step(model, tx)
    length, b = FLAGS.samples, FLAGS.batch_size

    def one_step(state, idx, labels, n, num_classes, key, t, images):
      pos, w = step_lib.sample_batch(key, t, n, length, b)
      return train_step(state, idx[pos], images, labels[pos], num_classes,
                        jax.random.fold_in(key, t), jnp.bool_(True), w)

    init = jax.jit(step_lib.make_init(model, tx, 20))
    self.args = [[jnp.asarray(tasks[k][i]) for k in ("idx", "labels", "n",
                                                     "num_classes")]
                 for i in range(self.q)]
    self.keys = [jax.random.fold_in(jax.random.PRNGKey(0), i) for i in range(self.q)]
    self.states = [init(jax.random.PRNGKey(i)) for i in range(self.q)]
    t = time.time()
    self.step = jax.jit(one_step, donate_argnums=0).lower(
        self.states[0], *self.args[0], self.keys[0], jnp.int32(0),
        self.base).compile()
    self.compile_s = time.time() - t
    self.program_mb = _program_mb(self.step)
    self.t, self.metrics = 0, None

  def work(self, steps: int) -> int:
    steps = max(0, min(steps, self.total - self.t))
    if steps == 0:
      return 0
    for i in range(self.q):  # The baseline being measured: a loop over models.
      for s in range(steps):
        self.states[i], self.metrics = self.step(
            self.states[i], *self.args[i], self.keys[i], jnp.int32(self.t + s),
            self.base)
    self.t += steps
    self.metrics["loss"].block_until_ready()
    return self.q * steps

  def final_loss(self) -> float:
    return float(self.metrics["loss"])


def _variant_names() -> list[str]:
  names = list(FLAGS.variants)
  if FLAGS.conv_impl and not FLAGS["variants"].present:
    names = ["seq_xla"]  # The older interface: its convs under vmap + the loop.
  for impl in FLAGS.conv_impl:
    VARIANTS[f"{impl}_vmap"] = (impl, "reshape", "vmap", "float32")
    names.append(f"{impl}_vmap")
  return list(dict.fromkeys(names))


def _failure(name: str, q: int, stage: str, error: Exception) -> dict:
  return {"variant": name, "num_models": q, "failed": stage,
          "error": f"{type(error).__name__}: {str(error)[:800]}"}


def bench(q: int, total_steps: int) -> list[dict]:
  runs, skipped = {}, []
  for name in _variant_names():
    if name not in VARIANTS:
      raise app.UsageError(f"Unknown variant {name!r}; choose from {sorted(VARIANTS)}")
    loop = VARIANTS[name][2]
    if loop == "torch":
      why = torch_zoo.available()
      if why:
        skipped.append({"variant": name, "num_models": q, "skipped": why})
        continue
      runs[name] = torch_zoo.TorchLoop(min(q, FLAGS.seq_max_models), total_steps,
                                       FLAGS.samples, FLAGS.num_classes,
                                       FLAGS.batch_size)
      continue
    cls = _Sequential if loop == "seq" else _Stacked
    try:
      runs[name] = cls(name, q, total_steps)
    except Exception as e:  # pylint: disable=broad-except
      # One variant that cannot build (a kernel that does not compile on this
      # GPU, out of memory) must not cost the others' numbers.
      skipped.append(_failure(name, q, "build", e))
  # Whole calls per round, so the vmapped and looped variants do the same steps.
  per_round = FLAGS.steps_per_call * math.ceil(
      total_steps / FLAGS.rounds / FLAGS.steps_per_call)
  stats = {n: {"model_steps": 0, "wall": 0.0, "cpu": 0.0, "best": 0.0}
           for n in runs}
  for _ in range(FLAGS.rounds):
    for name, r in list(runs.items()):
      wall, cpu = time.time(), time.process_time()
      try:
        done = r.work(per_round)
      except Exception as e:  # pylint: disable=broad-except
        skipped.append(_failure(name, q, "run", e))
        del runs[name], stats[name]
        continue
      wall, cpu = time.time() - wall, time.process_time() - cpu
      s = stats[name]
      s["model_steps"] += done
      s["wall"] += wall
      s["cpu"] += cpu
      if done:
        s["best"] = max(s["best"], done / wall)
  out = list(skipped)
  if not runs:
    return out
  first = next(iter(runs))
  for name, r in runs.items():
    s = stats[name]
    conv_impl, pool_impl, loop, dtype = VARIANTS[name]
    rate = s["model_steps"] / s["wall"]
    out.append({
        "variant": name, "conv_impl": conv_impl, "pool_impl": pool_impl,
        "model_loop": loop, "compute_dtype": dtype,
        "matmul_precision": PRECISION.get(name, "default"), "num_models": q,
        "models_run": r.q, "steps_per_model": s["model_steps"] // r.q,
        "steps_per_call": FLAGS.steps_per_call, "unroll": FLAGS.unroll,
        "model_steps_per_s": rate, "best_round_model_steps_per_s": s["best"],
        "ratio_to_first": rate / (stats[first]["model_steps"] / stats[first]["wall"]),
        "cpu_s": s["cpu"], "compile_s": r.compile_s, "run_s": s["wall"],
        "program_mb": getattr(r, "program_mb", None),
        "peak_device_mb": _peak_device_mb(),
        "peak_rss_mb": _rss_mb(), "final_loss_mean": r.final_loss()})
  return out


def main(argv):
  del argv
  cli.use_cpu_cores()  # One CPU device per core (before JAX starts).
  total_steps = FLAGS.epochs * math.ceil(FLAGS.samples / FLAGS.batch_size)
  print(json.dumps({"devices": [str(d) for d in jax.devices()],
                    "loadavg_start": os.getloadavg(),
                    "samples": FLAGS.samples, "epochs": FLAGS.epochs,
                    "batch_size": FLAGS.batch_size, "rounds": FLAGS.rounds,
                    "num_classes": FLAGS.num_classes,
                    "xla_flags": os.environ.get("XLA_FLAGS", "")}), flush=True)
  for q in (int(x) for x in FLAGS.num_models):
    for line in bench(q, total_steps):
      print(json.dumps(line), flush=True)
  print(json.dumps({"loadavg_end": os.getloadavg()}), flush=True)


if __name__ == "__main__":
  app.run(main)
