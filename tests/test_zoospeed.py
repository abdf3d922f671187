"""The faster CPU zoo step gives bit-identical numbers (docs/notes/zoospeed.md).

Formulations changed for speed only: the ``xla_vjp`` kernel gradient builds
its matmul operand channel-major; the multi-step runner draws a model's epoch
order once per epoch and call instead of at every step, and under ``"map"``
runs each model's steps of a call back to back (models outer, steps inner). The previous ones
live in ``benchmarks/zoo_before.py``; here a small zoo is trained both ways --
sharded ``lax.map`` (the CPU path) and ``vmap`` -- across epoch boundaries,
short last batches, models that finish early and a stopped model, and every
parameter, optimizer moment and loss must be equal. The sharded case compiles
with XLA's optimizations on (as the trainer runs), since fusion decides what
could change.
"""
import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from benchmarks import zoo_before
from transferjax.models import cnn, make_cnn
from transferjax.train import step as step_lib


@contextlib.contextmanager
def _optimized():
  """XLA's full optimizations (tests/conftest.py turns most of them off)."""
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", False)
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", old)


def _problem(q=4, length=96, batch=16):
  rng = np.random.default_rng(3)
  images = jnp.asarray(rng.random((200, 20, 20, 1), dtype=np.float32))
  n = np.array([96, 37, 64, 50][:q], np.int32)  # short last batches, 1-6 steps/epoch
  idx = np.zeros((q, length), np.int32)
  for i in range(q):
    idx[i, :n[i]] = rng.permutation(200)[:n[i]]
  tasks = {"idx": idx, "labels": rng.integers(0, 5, (q, length)).astype(np.int32),
           "n": n, "num_classes": np.array([5, 3, 4, 5][:q], np.int32),
           "num_steps": np.array([14, 9, 11, 14][:q], np.int32)}
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(0), i))(
      jnp.arange(q))
  return images, jax.tree.map(jnp.asarray, tasks), keys


def _train(make_runner, model_loop, mesh, batch=16, steps_per_call=4, calls=4):
  """The initial state, and state and losses after ``calls`` runner calls."""
  model = make_cnn("lenet20", 5, "xla_vjp", "float32", "reshape")
  tx = step_lib.make_optimizer(1e-2)
  images, tasks, keys = _problem(batch=batch)
  q = tasks["n"].shape[0]
  state = jax.jit(jax.vmap(step_lib.make_init(model, tx, 20)))(
      jax.random.split(jax.random.PRNGKey(1), q))
  start = jax.tree.map(np.array, state)
  active = jnp.array([True, True, False, True])  # model 2 stopped (early stopping)
  run = make_runner(model, tx, batch, steps_per_call, 1, model_loop, mesh)
  losses = []
  for c in range(calls):
    state, loss = run(state, tasks, keys, jnp.int32(c * steps_per_call), images,
                      active)
    losses.append(loss)
  # Copies: np.asarray would view device buffers that a later donation reuses.
  return start, jax.tree.map(np.array, (state, losses))


def _assert_identical(before, after):
  before, after = jax.tree.leaves(before), jax.tree.leaves(after)
  assert len(before) == len(after)
  for b, a in zip(before, after):
    assert b.shape == a.shape
    np.testing.assert_array_equal(a, b)  # exact, not to a tolerance


@pytest.mark.parametrize("model_loop", ["map", "vmap"])
def test_runner_and_kernel_gradient_are_bit_identical_to_before(model_loop):
  # map: the CPU path, models split over 2 devices, compiled as the trainer is.
  mesh = Mesh(np.array(jax.devices()[:2]), ("models",)) if model_loop == "map" else None
  opt = _optimized() if model_loop == "map" else contextlib.nullcontext()
  with opt:
    start, after = _train(step_lib.make_multi_step_runner, model_loop, mesh)
    with zoo_before.formulation():
      _, before = _train(zoo_before.make_multi_step_runner, model_loop, mesh)
  _assert_identical(before, after)
  # The stopped model never moved; the others did.
  kernel0 = start["params"]["conv2"]["kernel"]
  kernel = after[0]["params"]["conv2"]["kernel"]
  np.testing.assert_array_equal(kernel[2], kernel0[2])
  assert not np.array_equal(kernel[0], kernel0[0])


@pytest.mark.parametrize("shape", [(3, 3, 32, 64), (3, 3, 1, 32), (3, 3, 3, 4)])
def test_kernel_gradient_equals_previous_formulation_exactly(shape):
  kh, kw, c_in, c_out = shape
  rng = np.random.default_rng(0)
  hw = {32: 10, 1: 20}.get(c_in, 7)
  x = jnp.asarray(rng.standard_normal((3, 8, hw, hw, c_in), dtype=np.float32))
  g = jnp.asarray(rng.standard_normal((3, 8, hw, hw, c_out), dtype=np.float32))
  with _optimized():  # lax.map over models, as the CPU zoo step runs it
    new, old = (np.asarray(jax.jit(lambda x, g, f=f: jax.lax.map(
        lambda a: f(a[0], a[1], shape), (x, g)))(x, g))
                for f in (cnn._conv_kernel_grad, zoo_before.conv_kernel_grad))
  np.testing.assert_array_equal(new, old)
