r"""Where a zoo train step's time goes: each part of it timed alone, per model-step.

The first lever of issue [5/7] is "profile first". This times, for ``q`` models
of the reference configuration (batch 64, lenet20, head 20) stacked the way the
trainer stacks them (``--model_loop``: vmap on accelerators, lax.map on CPU),
each piece as its own compiled program: the forward pass, forward+backward,
the whole train step, and alone: conv1 and conv2 (forward+backward of a sum of
their outputs), the two pools, conv1 + ReLU + pool1 fused with conv1 recomputed
backward (``cnn.conv_relu_pool``; not in the sum of parts, it replaces conv1 +
pool1), the dense layer, Adam's update and the batch sampler. One JSON line per part: ``ms_per_call`` (median of ``--repeats``
timed calls after a warm-up), ``us_per_model_step``, ``gflop_per_s`` where
the part's FLOPs are counted, and ``share_of_step``. The parts overlap (the
step contains them all) and fusion across part boundaries is lost, so shares
are indicative; their sum is printed as a check.

  python -m benchmarks.zoo_profile --num_models=512 --conv_impl=im2col  # GPU
  python -m benchmarks.zoo_profile --num_models=32 --conv_impl=xla_vjp \
      --model_loop=map                                                  # CPU
"""
from __future__ import annotations

import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from transferjax.models import cnn, pallas_conv_pool
from transferjax.train import step as step_lib

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_models", 64, "Models q in the stack.")
flags.DEFINE_string("conv_impl", "im2col", "Convolution implementation.")
flags.DEFINE_string("compute_dtype", "float32", "float32 or bfloat16.")
flags.DEFINE_string("pool_impl", "reshape", "reshape, flax or fused (the whole-model "
                    "parts; the conv1_relu_pool1_fused part is timed either way).")
flags.DEFINE_enum("model_loop", None, ["vmap", "map"],
                  "How models are stacked (default: the trainer's for this backend).")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_integer("repeats", 5, "Timed calls per part (median reported).")

B_CONV1 = 20 * 20 * 32 * 9 * 2       # FLOPs per example of conv1's forward
B_CONV2 = 10 * 10 * 64 * 288 * 2     # ... conv2's forward
B_FC = 1600 * 200 * 2                 # ... the dense layer's forward


def _stack(fn, loop):
  """``fn`` over a leading model axis, the way the trainer stacks models."""
  if loop == "vmap":
    return jax.vmap(fn)
  return lambda *args: jax.lax.map(lambda a: fn(*a), args)


def _time(fn, args, repeats):
  compiled = jax.jit(fn).lower(*args).compile()
  jax.block_until_ready(compiled(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - t)
  return statistics.median(times) * 1e3


def main(argv):
  del argv
  q, b = FLAGS.num_models, FLAGS.batch_size
  loop = FLAGS.model_loop or step_lib.default_model_loop()
  dtype = jnp.dtype(FLAGS.compute_dtype)
  model = cnn.make_cnn("lenet20", 20, FLAGS.conv_impl, FLAGS.compute_dtype,
                       FLAGS.pool_impl)
  tx = step_lib.make_optimizer(1e-3)
  rng = np.random.default_rng(0)
  state = jax.jit(jax.vmap(step_lib.make_init(model, tx, 20)))(
      jax.random.split(jax.random.PRNGKey(0), q))
  x = jnp.asarray(rng.random((q, b, 20, 20, 1), dtype=np.float32))
  labels = jnp.asarray(rng.integers(0, 20, (q, b)), jnp.int32)
  ncls = jnp.full((q,), 20, jnp.int32)
  conv = cnn._CONV_FNS[FLAGS.conv_impl]  # pylint: disable=protected-access

  def loss(params, xi, yi, ci):
    logits, _ = model.apply({"params": params}, xi)
    return step_lib.cross_entropy(logits, yi, ci)

  train_step = step_lib.make_train_step(model, tx)

  def whole_step(st, xi, yi, ci):
    images = xi
    return train_step(st, jnp.arange(b), images, yi, ci, jax.random.PRNGKey(0),
                      jnp.bool_(True))[0]

  def conv_part(argnums):
    # conv1's input is the data: the step never computes its input gradient.
    def part(xi, k):
      return jax.grad(lambda xx, kk: jnp.sum(
          conv(xx.astype(dtype), kk.astype(dtype)).astype(jnp.float32) ** 2),
                      argnums=argnums)(xi, k)
    return part

  # conv1 + ReLU + pool1 with conv1 recomputed backward (the Pallas kernels with
  # --conv_impl=pallas): compare with conv1_fwd_bwd + relu_pool1_fwd_bwd.
  fused1 = (pallas_conv_pool.conv_relu_pool if FLAGS.conv_impl == "pallas"
            else cnn.conv_relu_pool)

  def fused1_part(xi, k, bias):
    return jax.grad(lambda kk, bb: jnp.sum(fused1(
        xi.astype(dtype), kk.astype(dtype), bb.astype(dtype)).astype(jnp.float32) ** 2),
                    argnums=(0, 1))(k, bias)

  def pool_part(xi):
    return jax.grad(lambda xx: jnp.sum(cnn.max_pool2(jax.nn.relu(xx)) ** 2))(xi)

  def fc_part(xi, w):
    return jax.grad(lambda xx, ww: jnp.sum(
        (xx.astype(dtype) @ ww.astype(dtype)).astype(jnp.float32) ** 2),
                    argnums=(0, 1))(xi, w)

  def adam_part(st, g):
    updates, opt = tx.update(g, st["opt"], st["params"])
    return step_lib.optax.apply_updates(st["params"], updates), opt

  def sample_part(key):
    return step_lib.sample_batch(key, jnp.int32(3), jnp.int32(2048), 2048, b)

  k1 = jnp.asarray(rng.normal(size=(q, 3, 3, 1, 32)), jnp.float32)
  k2 = jnp.asarray(rng.normal(size=(q, 3, 3, 32, 64)), jnp.float32)
  a1 = jnp.asarray(rng.normal(size=(q, b, 20, 20, 32)), jnp.float32)
  a2 = jnp.asarray(rng.normal(size=(q, b, 10, 10, 32)), jnp.float32)
  a3 = jnp.asarray(rng.normal(size=(q, b, 10, 10, 64)), jnp.float32)
  f_in = jnp.asarray(rng.normal(size=(q, b, 1600)), jnp.float32)
  w_fc = jnp.asarray(rng.normal(size=(q, 1600, 200)), jnp.float32)
  keys = jax.random.split(jax.random.PRNGKey(1), q)

  parts = [
      ("forward", _stack(lambda p, xi: model.apply({"params": p}, xi), loop),
       (state["params"], x), b * (B_CONV1 + B_CONV2 + B_FC)),
      ("forward_backward", _stack(jax.grad(loss), loop),
       (state["params"], x, labels, ncls), 3 * b * (B_CONV1 + B_CONV2 + B_FC)),
      ("train_step", _stack(whole_step, loop), (state, x, labels, ncls),
       3 * b * (B_CONV1 + B_CONV2 + B_FC)),
      ("conv1_fwd_bwd", _stack(conv_part(1), loop),
       (x, k1), 2 * b * B_CONV1),
      ("conv2_fwd_bwd", _stack(conv_part((0, 1)), loop), (a2, k2), 3 * b * B_CONV2),
      ("relu_pool1_fwd_bwd", _stack(pool_part, loop), (a1,), None),
      ("conv1_relu_pool1_fused_fwd_bwd", _stack(fused1_part, loop),
       (x, k1, jnp.zeros((q, 32), jnp.float32)), 3 * b * B_CONV1),
      ("relu_pool2_fwd_bwd", _stack(pool_part, loop), (a3,), None),
      ("fc_fwd_bwd", _stack(fc_part, loop), (f_in, w_fc), 3 * b * B_FC),
      ("adam", _stack(adam_part, loop), (state, state["params"]), None),
      ("sample_batch", _stack(sample_part, loop), (keys,), None),
  ]
  print(json.dumps({"devices": [str(d) for d in jax.devices()], "num_models": q,
                    "conv_impl": FLAGS.conv_impl, "compute_dtype": FLAGS.compute_dtype,
                    "pool_impl": FLAGS.pool_impl,
                    "model_loop": loop, "batch_size": b}), flush=True)
  rows, step_ms = [], None
  for name, fn, args, flops in parts:
    try:
      ms = _time(fn, args, FLAGS.repeats)
    except Exception as e:  # pylint: disable=broad-except  # e.g. a kernel that
      # does not compile on this GPU: report it, keep timing the other parts.
      print(json.dumps({"part": name, "error": f"{type(e).__name__}: {str(e)[:800]}"}),
            flush=True)
      continue
    if name == "train_step":
      step_ms = ms
    row = {"part": name, "ms_per_call": ms, "us_per_model_step": ms * 1e3 / q}
    if flops:
      row["gflop_per_s"] = flops * q / (ms * 1e-3) / 1e9
    rows.append(row)
    print(json.dumps(row), flush=True)
  # The fused part replaces conv1 + relu_pool1: not summed with them.
  alone = [r for r in rows if r["part"] not in ("forward", "forward_backward",
                                                "train_step",
                                                "conv1_relu_pool1_fused_fwd_bwd")]
  if step_ms is None:
    print(json.dumps({"summary": None, "error": "train_step did not run"}), flush=True)
    return
  for r in rows:
    r["share_of_step"] = r["ms_per_call"] / step_ms
  print(json.dumps({"summary": {r["part"]: round(r["share_of_step"], 3) for r in rows
                                if r["part"] not in ("forward", "forward_backward",
                                                     "train_step")},
                    "sum_of_parts_over_step": sum(r["share_of_step"] for r in alone),
                    "train_step_ms": step_ms,
                    "model_steps_per_s": q / (step_ms * 1e-3)}), flush=True)


if __name__ == "__main__":
  app.run(main)
