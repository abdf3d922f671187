"""Pallas convolution: exact in the interpreter here, lowerable to Triton for CUDA.

No GPU in CI: the kernels run in Pallas' interpreter (same kernel code, exact
float32), and the Triton lowering is checked by lowering the whole vmapped zoo
step for the "cuda" platform (Pallas emits the Triton IR in Python; compiling
it to PTX needs a GPU: benchmarks/gpu_check.sh).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import testlib

from transferjax.errors import ConfigError
from transferjax.models import make_cnn
from transferjax.models import cnn, pallas_conv, pallas_conv_pool
from transferjax.train import ZooConfig, train_zoo
from transferjax.train import step as step_lib
from transferjax.train.zoo import check_conv_backend


def _problem(b, h, w, c_in, c_out, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(b, h, w, c_in)).astype(np.float32),
          (rng.normal(size=(3, 3, c_in, c_out)) / np.sqrt(9 * c_in)).astype(np.float32),
          rng.normal(size=(b, h, w, c_out)).astype(np.float32))


# 10x10 is lenet20's conv2; 5x7 makes rows that do not fill the last tile and a
# non-square padded stride; 1x1 is all padding but the centre.
@pytest.mark.parametrize("shape", [(2, 10, 10, 16, 32), (3, 5, 7, 32, 16),
                                   (1, 1, 1, 16, 16)])
def test_forward_and_gradients_match_float64_direct_sums(shape):
  x, kernel, g = _problem(*shape)
  with jax.default_matmul_precision("highest"):
    y, vjp = jax.vjp(pallas_conv.conv3x3_same, jnp.asarray(x), jnp.asarray(kernel))
    dx, dk = vjp(jnp.asarray(g))
  want_dx, want_dk = testlib.numpy_conv3x3_grads(
      x.astype(np.float64), kernel.astype(np.float64), g.astype(np.float64))
  np.testing.assert_allclose(
      np.asarray(y), testlib.numpy_conv3x3(x.astype(np.float64), kernel.astype(np.float64)),
      rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(dx), want_dx, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(dk), want_dk, rtol=1e-5, atol=2e-5)


def test_kernel_grad_splits_rows_into_divisor_tiles():
  assert pallas_conv.split_tiles(72) == 12  # lenet20 conv2 at batch 64
  assert pallas_conv.split_tiles(7) == 7
  assert pallas_conv.split_tiles(17) == 1   # prime: one tile per program
  assert pallas_conv.supports(32, 64) and not pallas_conv.supports(1, 32)
  assert not pallas_conv.supports(24, 32)    # Triton tiles are powers of two
  assert pallas_conv_pool.supports(1, 32) and not pallas_conv_pool.supports(3, 32)


def test_vmapped_models_equal_each_model_alone():
  x, kernel, g = _problem(2, 6, 6, 16, 16)
  xs = jnp.stack([x, 2 * x])
  ks = jnp.stack([kernel, -kernel])
  loss = lambda f: lambda a, k: jnp.sum(f(a, k) * g)
  with jax.default_matmul_precision("highest"):
    ys = jax.vmap(pallas_conv.conv3x3_same)(xs, ks)
    grads = jax.vmap(jax.grad(loss(pallas_conv.conv3x3_same), (0, 1)))(xs, ks)
    for i in range(2):
      y_i = pallas_conv.conv3x3_same(xs[i], ks[i])
      dx_i, dk_i = jax.grad(loss(pallas_conv.conv3x3_same), (0, 1))(xs[i], ks[i])
      np.testing.assert_allclose(np.asarray(ys[i]), np.asarray(y_i), rtol=1e-6, atol=1e-6)
      np.testing.assert_allclose(np.asarray(grads[0][i]), np.asarray(dx_i), rtol=1e-6,
                                 atol=1e-6)
      np.testing.assert_allclose(np.asarray(grads[1][i]), np.asarray(dk_i), rtol=1e-6,
                                 atol=1e-5)


def test_bf16_inputs_accumulate_in_float32():
  x, kernel, _ = _problem(2, 10, 10, 32, 64)
  y = pallas_conv.conv3x3_same(jnp.asarray(x, jnp.bfloat16),
                               jnp.asarray(kernel, jnp.bfloat16))
  assert y.dtype == jnp.bfloat16
  want = testlib.numpy_conv3x3(x.astype(np.float64), kernel.astype(np.float64))
  err = np.abs(np.asarray(y, np.float32) - want).max()
  assert err < 0.05 * np.abs(want).max(), err  # bf16 inputs, f32 sums of 288 terms


def test_pallas_model_equals_im2col_model_and_conv1_falls_back():
  model, ref = make_cnn("lenet20", 5, "pallas"), make_cnn("lenet20", 5, "im2col")
  x = jnp.asarray(np.random.default_rng(1).random((4, 20, 20, 1), np.float32))
  params = ref.init(jax.random.key(0), x)
  loss = lambda m: lambda p: jnp.sum(m.apply(p, x)[0] ** 2)
  with jax.default_matmul_precision("highest"):
    np.testing.assert_allclose(np.asarray(model.apply(params, x)[1]),
                               np.asarray(ref.apply(params, x)[1]), rtol=1e-5, atol=1e-5)
    got, want = jax.grad(loss(model))(params), jax.grad(loss(ref))(params)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
  jaxpr = str(jax.make_jaxpr(lambda p: model.apply(p, x))(params))
  assert jaxpr.count("pallas_call") == 1  # conv2 only; conv1 has 1 input channel


def _runner(conv_impl, compute_dtype="float32", loop="vmap", pool_impl="reshape"):
  tx = step_lib.make_optimizer(1e-3)
  model = make_cnn("lenet20", 3, conv_impl, compute_dtype, pool_impl)
  return (step_lib.make_multi_step_runner(model, tx, 4, 2, model_loop=loop),
          step_lib.make_init(model, tx, 20))


def _runner_args(q=2):
  rng = np.random.default_rng(3)
  tasks = {"idx": np.stack([rng.permutation(16)[:8] for _ in range(q)]).astype(np.int32),
           "labels": rng.integers(0, 3, (q, 8)).astype(np.int32),
           "n": np.full((q,), 8, np.int32), "num_classes": np.full((q,), 3, np.int32),
           "num_steps": np.full((q,), 2, np.int32)}
  images = jnp.asarray(rng.random((16, 20, 20, 1), np.float32))
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(q))
  return jax.tree.map(jnp.asarray, tasks), keys, jnp.int32(0), images, jnp.ones(q, bool)


def test_vmapped_pallas_zoo_step_equals_looped_xla_vjp_step():
  """Two steps of two models: the GPU candidate path (vmap + Pallas) equals the
  CPU fast path (lax.map + xla_vjp) from the same initial state."""
  args = _runner_args()
  fast, init = _runner("pallas")
  ref, _ = _runner("xla_vjp", loop="map")
  states = jax.vmap(init)(jax.random.split(jax.random.key(1), 2))
  with jax.default_matmul_precision("highest"):
    got, got_loss = fast(jax.tree.map(jnp.copy, states), *args)
    want, want_loss = ref(jax.tree.map(jnp.copy, states), *args)
  np.testing.assert_allclose(np.asarray(got_loss), np.asarray(want_loss), rtol=1e-5)
  # Adam's first steps move a parameter by ~lr = 1e-3 whatever its gradient's
  # size, so rounding in near-zero gradients shows up to a fraction of lr:
  # measured 1.9e-5 here (im2col vs xla: 1.7e-4). A wrong gradient moves ~1e-3.
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-4)


# conv2: forward, input gradient, kernel gradient; with pool_impl="fused" also
# the conv1 stage's forward, kernel+bias gradient and input gradient (dead for
# conv1: lowered, then removed by XLA's dead-code elimination when compiled).
@pytest.mark.parametrize("dtype,pool_impl,kernels", [
    ("float32", "reshape", 3), ("bfloat16", "reshape", 3), ("float32", "fused", 6),
    ("bfloat16", "fused", 6)])
def test_zoo_step_lowers_to_triton_kernels_for_cuda(monkeypatch, dtype, pool_impl,
                                                    kernels):
  monkeypatch.setattr(pallas_conv, "use_interpreter", lambda: False)
  fast, init = _runner("pallas", dtype, pool_impl=pool_impl)
  states = jax.eval_shape(jax.vmap(init), jax.random.split(jax.random.key(1), 2))
  text = fast.trace(states, *_runner_args()).lower(
      lowering_platforms=("cuda",)).as_text()
  assert text.count("__gpu$xla.gpu.triton") == kernels  # nothing interpreted


def test_pallas_zoo_needs_a_gpu(tmp_path):
  with pytest.raises(ConfigError, match="needs a GPU|backend is 'cpu'"):
    check_conv_backend("pallas")
  check_conv_backend("im2col")
  pool = testlib.synthetic_pool()
  tasks = testlib.class_subset_tasks(pool, np.random.default_rng(0), [(2, 4)], 0)
  with pytest.raises(ConfigError, match="conv_impl='pallas'"):
    train_zoo(ZooConfig(conv_impl="pallas", num_tasks=1), pool, tasks, str(tmp_path))
  assert not list(tmp_path.iterdir())  # refused before writing anything


def test_other_tilings_give_the_same_convolution():
  x, kernel, g = _problem(2, 6, 6, 16, 16)
  with jax.default_matmul_precision("highest"):
    want = jax.vjp(pallas_conv.conv3x3_same, x, kernel)[1](g)
    with pallas_conv.tiling(tile_rows=32, tiles_per_split=2):
      _, vjp = jax.vjp(pallas_conv.conv3x3_same, x, kernel)
    got = vjp(g)  # the backward keeps the forward's tiling
  assert pallas_conv.TILE_ROWS == 128  # restored
  for a, b in zip(got, want):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="power of two"):
    with pallas_conv.tiling(tile_rows=100):
      pass



def _separate_conv1_stage(x, kernel, bias):
  return cnn.max_pool2(jax.nn.relu(cnn._conv_xla(x, kernel) + bias))


# lenet20's conv1 (20x20 -> 10x10, 400 rows: not a multiple of the 128-row tile),
# spot9's (9x9: the odd row and column are dropped), and a non-square one.
@pytest.mark.parametrize("shape,c_out", [((3, 20, 20), 32), ((2, 9, 9), 32),
                                         ((1, 6, 10), 16)])
def test_pallas_conv1_stage_equals_separate_layers_jitted(shape, c_out):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.random(shape + (1,), np.float32))
  kernel = jnp.asarray(rng.normal(size=(3, 3, 1, c_out)) / 3, jnp.float32)
  bias = jnp.asarray(rng.normal(size=(c_out,)) * 0.1, jnp.float32)
  g = jnp.asarray(rng.normal(size=(shape[0], shape[1] // 2, shape[2] // 2, c_out)),
                  jnp.float32)
  # Jitted: the backward's winners must agree with the forward whatever XLA fuses.
  vjp_of = lambda fn: jax.jit(lambda *a: (lambda y, f: (y, f(g)))(*jax.vjp(fn, *a)))
  with jax.default_matmul_precision("highest"):
    got = vjp_of(pallas_conv_pool.conv_relu_pool)(x, kernel, bias)
    want = vjp_of(_separate_conv1_stage)(x, kernel, bias)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_pallas_conv1_stage_vmapped_equals_alone_and_model_equals_im2col():
  rng = np.random.default_rng(1)
  xs = jnp.asarray(rng.random((2, 4, 8, 8, 1), np.float32))
  ks = jnp.asarray(rng.normal(size=(2, 3, 3, 1, 16)) / 3, jnp.float32)
  bs = jnp.asarray(rng.normal(size=(2, 16)) * 0.1, jnp.float32)
  grad = jax.grad(lambda x, k, b: jnp.sum(pallas_conv_pool.conv_relu_pool(x, k, b) ** 2),
                  (1, 2))
  with jax.default_matmul_precision("highest"):
    stacked = jax.jit(jax.vmap(grad))(xs, ks, bs)
    for i in range(2):
      alone = jax.jit(grad)(xs[i], ks[i], bs[i])
      for a, b in zip(stacked, alone):
        np.testing.assert_allclose(np.asarray(a[i]), np.asarray(b), rtol=1e-5, atol=1e-5)
  model = make_cnn("lenet20", 5, "pallas", pool_impl="fused")
  ref = make_cnn("lenet20", 5, "im2col")
  x = jnp.asarray(rng.random((4, 20, 20, 1), np.float32))
  params = ref.init(jax.random.key(0), x)
  loss = lambda m: jax.jit(jax.grad(
      lambda p: step_lib.cross_entropy(m.apply(p, x)[0], jnp.arange(4), 5)))
  with jax.default_matmul_precision("highest"):
    for a, b in zip(jax.tree.leaves(loss(model)(params)),
                    jax.tree.leaves(loss(ref)(params)), strict=True):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
  jaxpr = str(jax.make_jaxpr(lambda p: model.apply(p, x))(params))
  assert jaxpr.count("pallas_call") == 2  # the conv1 stage and conv2
