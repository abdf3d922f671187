"""Tests of the fast CPU training path and the bf16 option (docs/notes/speed.md).

The fast path (reshape-max pooling, the ``xla_vjp`` convolution with its
hand-written backward, ``model_loop="map"``) must give model i what the plain
reference step gives it (``nn.Conv`` semantics, ``nn.max_pool``,
``make_train_step`` alone), and bf16 training must rank and score sources like
float32 training.
"""
import dataclasses
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import testlib
from scipy.stats import spearmanr

from transferjax.data.container import Dataset
from transferjax.data.tasks import SourceTask
from transferjax.errors import CheckpointError, ConfigError
from transferjax.models import make_cnn, max_pool2
from transferjax.models.cnn import _conv_xla, _conv_xla_vjp
from transferjax.train import ZooConfig, train_zoo
from transferjax.train import step as step_lib


@pytest.mark.parametrize("size", [20, 9])
def test_max_pool2_equals_nn_max_pool_values_and_gradients(size):
  x = jax.random.normal(jax.random.PRNGKey(0), (3, size, size, 4))
  np.testing.assert_array_equal(
      np.asarray(max_pool2(x)),
      np.asarray(nn.max_pool(x, (2, 2), strides=(2, 2))))
  g = jax.random.normal(jax.random.PRNGKey(1), max_pool2(x).shape)
  ours = jax.grad(lambda a: jnp.sum(max_pool2(a) * g))(x)
  flax_ = jax.grad(lambda a: jnp.sum(nn.max_pool(a, (2, 2), strides=(2, 2)) * g))(x)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(flax_))
  # After a ReLU, ties are all-zero windows; the ReLU zeroes their gradient in
  # both implementations.
  relu_grad = lambda pool: jax.grad(lambda a: jnp.sum(pool(nn.relu(a)) * g))(x)
  np.testing.assert_array_equal(
      np.asarray(relu_grad(max_pool2)),
      np.asarray(relu_grad(lambda a: nn.max_pool(a, (2, 2), strides=(2, 2)))))


def test_xla_vjp_gradients_match_float64_numpy_and_autodiff():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 6, 5, 3)).astype(np.float32)
  kernel = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
  g = rng.normal(size=(2, 6, 5, 4)).astype(np.float32)
  with jax.default_matmul_precision("highest"):
    out, vjp = jax.vjp(_conv_xla_vjp, jnp.asarray(x), jnp.asarray(kernel))
    dx, dk = vjp(jnp.asarray(g))
    ref_out, ref_vjp = jax.vjp(_conv_xla, jnp.asarray(x), jnp.asarray(kernel))
    ref_dx, ref_dk = ref_vjp(jnp.asarray(g))
  want_dx, want_dk = testlib.numpy_conv3x3_grads(x.astype(np.float64),
                                       kernel.astype(np.float64),
                                       g.astype(np.float64))
  np.testing.assert_array_equal(np.asarray(out), np.asarray(ref_out))
  np.testing.assert_allclose(np.asarray(dx), want_dx, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(dk), want_dk, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(dx), np.asarray(ref_dx), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(dk), np.asarray(ref_dk), rtol=1e-5, atol=1e-5)


B = 4


def _runner_problem(q=3, length=12):
  rng = np.random.default_rng(2)
  n = np.array([12, 5, 9], np.int32)[:q]
  tasks = {"idx": np.zeros((q, length), np.int32),
           "labels": np.zeros((q, length), np.int32), "n": n,
           "num_classes": np.array([2, 3, 5], np.int32)[:q],
           "num_steps": (2 * -(-n // B)).astype(np.int32)}  # 2 epochs each.
  for i in range(q):
    tasks["idx"][i, :n[i]] = rng.choice(24, n[i], replace=False)
    tasks["labels"][i, :n[i]] = rng.integers(0, tasks["num_classes"][i], n[i])
  images = jnp.asarray(rng.random((24, 20, 20, 1), dtype=np.float32))
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(0), i))(
      jnp.arange(q))
  return tasks, images, keys


def _run(runner, states, tasks, images, keys, active):
  total = int(tasks["num_steps"].max())
  state, all_losses = jax.tree.map(jnp.copy, states), []
  for t0 in range(0, total, 4):
    state, losses = runner(state, jax.tree.map(jnp.asarray, tasks), keys,
                           jnp.int32(t0), images, jnp.asarray(active))
    all_losses.append(np.asarray(losses))
  return state, np.concatenate(all_losses)


def test_fast_path_equals_plain_reference_step_per_model():
  """xla_vjp + reshape pool + lax.map over models == each model trained alone
  by the plain step (nn.Conv semantics, nn.max_pool), float32 HIGHEST."""
  tasks, images, keys = _runner_problem()
  tx = step_lib.make_optimizer(1e-3)
  fast = make_cnn("lenet20", 5, "xla_vjp")
  plain = make_cnn("lenet20", 5, "xla", pool_impl="flax")
  states = jax.vmap(step_lib.make_init(plain, tx, 20))(
      jax.random.split(jax.random.PRNGKey(1), 3))
  runner = step_lib.make_multi_step_runner(fast, tx, B, 4, model_loop="map")
  step = jax.jit(step_lib.make_train_step(plain, tx))
  sample = jax.jit(step_lib.sample_batch, static_argnums=(3, 4))
  with jax.default_matmul_precision("highest"):
    got, losses = _run(runner, states, tasks, images, keys, np.ones(3, bool))
    for i in range(3):
      state = jax.tree.map(lambda a, i=i: a[i], states)
      for t in range(int(tasks["num_steps"][i])):
        pos, w = sample(keys[i], jnp.int32(t), jnp.int32(tasks["n"][i]), 12, B)
        pos = np.asarray(pos)
        state, metrics = step(state, jnp.asarray(tasks["idx"][i][pos]), images,
                              jnp.asarray(tasks["labels"][i][pos]),
                              jnp.int32(tasks["num_classes"][i]),
                              jax.random.fold_in(keys[i], t), jnp.bool_(True), w)
        np.testing.assert_allclose(losses[t, i], float(metrics["loss"]), rtol=1e-5)
      for a, b in zip(jax.tree.leaves(state),
                      jax.tree.leaves(jax.tree.map(lambda a, i=i: a[i], got)),
                      strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5,
                                   atol=1e-5)
  assert np.all(losses[int(tasks["num_steps"][1]):, 1] == 0)  # Stopped model.


def test_map_loop_skips_inactive_models_bit_identically_and_matches_vmap():
  tasks, images, keys = _runner_problem()
  tx = step_lib.make_optimizer(1e-3)
  model = make_cnn("lenet20", 5)
  states = jax.vmap(step_lib.make_init(model, tx, 20))(
      jax.random.split(jax.random.PRNGKey(3), 3))
  active = np.array([True, False, True])
  with jax.default_matmul_precision("highest"):
    mapped, lm = _run(step_lib.make_multi_step_runner(model, tx, B, 4,
                                                      model_loop="map"),
                      states, tasks, images, keys, active)
    vmapped, lv = _run(step_lib.make_multi_step_runner(model, tx, B, 4),
                       states, tasks, images, keys, active)
  for a, b, s in zip(jax.tree.leaves(mapped), jax.tree.leaves(vmapped),
                     jax.tree.leaves(states), strict=True):
    np.testing.assert_array_equal(np.asarray(a)[1], np.asarray(s)[1])
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
  assert np.all(lm[:, 1] == 0) and np.all(lv[:, 1] == 0)
  np.testing.assert_allclose(lm, lv, rtol=1e-5)
  assert int(mapped["opt"][0].count[2]) == tasks["num_steps"][2]
  with pytest.raises(ValueError, match="Unknown model_loop 'pmap'"):
    step_lib.make_multi_step_runner(model, tx, B, 4, model_loop="pmap")


def test_bf16_model_keeps_float32_params_and_outputs_close_to_float32():
  f32 = make_cnn("lenet20", 4)
  bf16 = make_cnn("lenet20", 4, compute_dtype="bfloat16")
  x = jax.random.uniform(jax.random.PRNGKey(0), (8, 20, 20, 1))
  params = f32.init(jax.random.PRNGKey(1), x)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(
      bf16.init(jax.random.PRNGKey(1), x)))
  with jax.default_matmul_precision("highest"):
    a, fa = f32.apply(params, x)
  b, fb = bf16.apply(params, x)
  assert b.dtype == fb.dtype == jnp.float32
  # bf16 keeps 8 mantissa bits: relative error ~ 2^-8 per op, a few ops deep.
  scale = float(jnp.max(jnp.abs(a)))
  assert float(jnp.max(jnp.abs(a - b))) < 0.05 * scale
  assert float(jnp.max(jnp.abs(a - b))) > 0  # It really ran in bf16.
  with pytest.raises(ConfigError, match="Unknown compute_dtype 'float16'"):
    make_cnn("lenet20", 4, compute_dtype="float16")


def _pool(signal=0.15):
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(6), 16)
  images = rng.random((96, 20, 20, 1)).astype(np.float32) * 0.5
  for c in range(6):  # A class is a bright band, blurred by noise.
    images[labels == c, 3 * c:3 * c + 3, :, 0] += signal
  return Dataset(np.clip(images, 0, 1), labels, [f"c{i}" for i in range(6)], "syn")


def _tasks(pool, num_tasks=6):
  rng = np.random.default_rng(1)
  tasks = []
  for i in range(num_tasks):
    classes = np.sort(rng.choice(6, 2 + i % 3, replace=False))
    train, hold = [], []
    for c in classes:
      rows = rng.permutation(np.flatnonzero(pool.labels == c))
      train.append(rows[:10])
      hold.append(rows[10:16])
    tasks.append(SourceTask(i, "syn", classes, np.sort(np.concatenate(train)),
                            np.sort(np.concatenate(hold))))
  return tasks


def test_bf16_zoo_scores_and_ranks_sources_like_float32(tmp_path):
  # A weak signal and 4 epochs, so holdout accuracies spread (~0.65-1.0) and
  # can disagree. Measured (docs/notes/speed.md): max |diff| 0.17, mean diff
  # 0.05, Spearman of train losses 1.0.
  pool = _pool()
  tasks = _tasks(pool)
  cfg = ZooConfig(dataset="syn", num_tasks=6, max_classes=4, epochs=4,
                  batch_size=8, steps_per_call=8, chunk_size=6,
                  conv_impl="xla_vjp", model_loop="map", learning_rate=3e-3)
  f32 = train_zoo(cfg, pool, tasks, str(tmp_path / "f32"))
  bf16 = train_zoo(dataclasses.replace(cfg, compute_dtype="bfloat16"), pool,
                   tasks, str(tmp_path / "bf16"))
  acc32, acc16 = f32.metrics["holdout_accuracy"], bf16.metrics["holdout_accuracy"]
  # The sources learned something (chance is 1/2 .. 1/4), in both dtypes.
  assert np.mean(acc32) > 0.6 and np.mean(acc16) > 0.6
  assert np.max(np.abs(acc32 - acc16)) <= 0.25
  assert abs(np.mean(acc32) - np.mean(acc16)) <= 0.1
  rho = spearmanr(f32.metrics["train_loss"], bf16.metrics["train_loss"])[0]
  assert rho >= 0.9, rho
  assert bf16.config["compute_dtype"] == "bfloat16"
  # compute_dtype is part of the zoo's identity.
  with pytest.raises(CheckpointError, match="compute_dtype: workdir has 'float32'"):
    train_zoo(dataclasses.replace(cfg, compute_dtype="bfloat16"), pool, tasks,
              str(tmp_path / "f32"))
  # A record from before the flag existed resumes as float32.
  path = tmp_path / "f32" / "zoo_config.json"
  record = json.loads(path.read_text())
  del record["compute_dtype"]
  path.write_text(json.dumps(record))
  again = train_zoo(cfg, pool, tasks, str(tmp_path / "f32"))
  for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(f32.params)):
    np.testing.assert_array_equal(a, b)
  assert os.path.exists(tmp_path / "bf16" / "metrics.json")
  with pytest.raises(ConfigError, match="Unknown compute_dtype"):
    train_zoo(dataclasses.replace(cfg, compute_dtype="fp8"), pool, tasks,
              str(tmp_path / "x"))


@pytest.mark.parametrize("arch,size", [("lenet20", 20), ("spot9", 9)])
def test_fused_conv1_relu_pool_equals_separate_layers_and_saves_no_activations(arch, size):
  """pool_impl="fused": same parameters, outputs and gradients as conv1 + ReLU +
  max_pool2 (spot9's odd 9x9 drops a row and column), and its backward keeps no
  [b, size, size, 32] conv1 activation (it recomputes it). Jitted: XLA may
  recompute conv1 in several fusions with different FMA contraction, which broke
  a max-by-equality backward (right eagerly, wrong under jit)."""
  x = jnp.asarray(np.random.default_rng(0).random((5, size, size, 1), np.float32))
  labels = jnp.asarray([0, 1, 2, 3, 1])
  fused = make_cnn(arch, 4, "xla_vjp", pool_impl="fused")
  plain = make_cnn(arch, 4, "xla_vjp")
  params = plain.init(jax.random.key(0), x)
  same_init = jax.tree.map(lambda a, b: bool((a == b).all()), params,
                            fused.init(jax.random.key(0), x))
  assert all(jax.tree.leaves(same_init))
  loss = lambda m: lambda p: step_lib.cross_entropy(m.apply(p, x)[0], labels, 4)
  with jax.default_matmul_precision("highest"):
    np.testing.assert_allclose(np.asarray(fused.apply(params, x)[1]),
                               np.asarray(plain.apply(params, x)[1]), rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(jax.jit(jax.grad(loss(fused)))(params)),
                    jax.tree.leaves(jax.jit(jax.grad(loss(plain)))(params)),
                    strict=True):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
  conv1_out = (5, size, size, 32)
  saved = lambda m: [a.shape for a in jax.tree.leaves(jax.vjp(loss(m), params)[1])]
  assert conv1_out in saved(plain) and conv1_out not in saved(fused)
