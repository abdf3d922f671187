"""The zoo trainer's CPU step as it was before docs/notes/zoospeed.md.

Two formulations that the library replaced by faster ones with the same
numbers, kept here so that ``tests/test_zoospeed.py`` can check that the
parameters stay bit-identical and ``benchmarks/train_zoo.py`` can time before
against after in one run (variant ``xla_vjp_map_sharded_before``):

* ``conv_kernel_grad``: the xla_vjp kernel gradient from the ``[kh*kw, b, h, w,
  c_in]`` stack of shifted slices, which XLA then transposes to the matmul's
  ``[kh*kw*c_in, b*h*w]`` operand;
* ``make_multi_step_runner``: draws every model's epoch permutation (a sort of
  its rows) at every step, and under ``"map"`` loops over steps outside and
  models inside (each model's state sliced from and written back to the stack
  at every step).

``formulation()`` is a context manager under which ``cnn`` traces the old
kernel gradient (trace inside it; the compiled program keeps it).
"""
from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from transferjax.models import cnn
from transferjax.train import engine
from transferjax.train import step as step_lib


def conv_kernel_grad(x, g, kernel_shape):
  """``[kh, kw, c_in, c_out]`` kernel gradient, the previous way."""
  kh, kw = kernel_shape[:2]
  h, w = x.shape[1], x.shape[2]
  xp = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  shifted = jnp.stack([xp[:, i:i + h, j:j + w, :]
                       for i in range(kh) for j in range(kw)])  # [kh*kw, b, h, w, c]
  dk = jnp.einsum("kbhwc,bhwo->kco", shifted, g)
  return dk.reshape(kernel_shape)


@contextlib.contextmanager
def formulation():
  """Trace ``cnn``'s xla_vjp convolution with the previous kernel gradient."""
  new = cnn._conv_kernel_grad  # pylint: disable=protected-access
  cnn._conv_kernel_grad = conv_kernel_grad  # pylint: disable=protected-access
  try:
    yield
  finally:
    cnn._conv_kernel_grad = new  # pylint: disable=protected-access


def make_multi_step_runner(model, tx, batch_size, steps_per_call, unroll=1,
                           model_loop="vmap", mesh=None):
  """``step.make_multi_step_runner`` as it was: ``sample_batch`` every step."""
  engine.check_model_loop(model_loop)
  train_step = step_lib.make_train_step(model, tx)

  def one_model(active, state, task, model_key, t, images):
    length = task["idx"].shape[0]
    positions, weights = step_lib.sample_batch(model_key, t, task["n"], length,
                                               batch_size)
    state, metrics = train_step(
        state, task["idx"][positions], images, task["labels"][positions],
        task["num_classes"], jax.random.fold_in(model_key, t), active, weights)
    return state, jnp.where(active, metrics["loss"], 0.0)

  many = engine.over_models(one_model, 2, model_loop)

  def run(state, tasks, model_keys, t0, images, model_active):
    def body(state, t):
      active = (t < tasks["num_steps"]) & model_active
      return many(active, state, tasks, model_keys, t, images)
    steps = t0 + jnp.arange(steps_per_call, dtype=jnp.int32)
    return lax.scan(body, state, steps, unroll=unroll)

  if model_loop == "map":
    run = engine.shard_over_models(
        run, mesh, (True, True, True, False, False, True),
        (engine.MODELS, P(None, "models")))
  return jax.jit(run, donate_argnums=0)
