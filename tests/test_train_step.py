"""Tests of the single-model step, batch sampling and the vmapped runner."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from transferjax.models import make_cnn
from transferjax.train import step as step_lib

B = 4  # batch size used throughout


@pytest.fixture(scope="module")
def setup():
  model = make_cnn("lenet20", 5)
  tx = step_lib.make_optimizer(1e-3)
  init = step_lib.make_init(model, tx, 20)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.random((24, 20, 20, 1), dtype=np.float32))
  return model, tx, init, images, jax.jit(step_lib.make_train_step(model, tx))


ONES = jnp.ones((B,), jnp.float32)


def test_masked_loss_equals_sliced_loss_and_float64_reference():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(6, 5)).astype(np.float32) * 2
  labels = rng.integers(0, 3, 6)
  got = step_lib.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), jnp.int32(3))
  sliced = step_lib.cross_entropy(jnp.asarray(logits[:, :3]), jnp.asarray(labels),
                                  jnp.int32(3))
  l64 = logits[:, :3].astype(np.float64)
  want = np.mean(logsumexp(l64, axis=1) - l64[np.arange(6), labels])
  np.testing.assert_allclose(float(got), float(sliced), rtol=1e-6)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  # Weights: zero-weight rows do not count.
  w = np.array([1, 1, 0, 1, 0, 0], np.float32)
  got_w = step_lib.cross_entropy(jnp.asarray(logits), jnp.asarray(labels),
                                 jnp.int32(3), jnp.asarray(w))
  keep = w > 0
  want_w = np.mean((logsumexp(l64, axis=1) - l64[np.arange(6), labels])[keep])
  np.testing.assert_allclose(float(got_w), want_w, rtol=1e-5)


def test_padded_head_columns_get_exactly_zero_updates(setup):
  model, tx, init, images, train_step = setup
  state0 = init(jax.random.PRNGKey(0))
  state = state0
  labels = jnp.array([0, 1, 2, 1])
  for s in range(3):
    idx = jnp.arange(B) + s * B
    state, _ = train_step(state, idx, images, labels, jnp.int32(3),
                          jax.random.PRNGKey(s), jnp.bool_(True), ONES)
  k0, k1 = state0["params"]["head"]["kernel"], state["params"]["head"]["kernel"]
  b0, b1 = state0["params"]["head"]["bias"], state["params"]["head"]["bias"]
  np.testing.assert_array_equal(np.asarray(k1[:, 3:]), np.asarray(k0[:, 3:]))
  np.testing.assert_array_equal(np.asarray(b1[3:]), np.asarray(b0[3:]))
  # Real columns move (rows of dead ReLU features may not).
  assert np.mean(np.asarray(k1[:, :3]) != np.asarray(k0[:, :3])) > 0.5
  assert np.all(np.asarray(b1[:3]) != np.asarray(b0[:3]))


def test_inactive_step_leaves_state_bit_identical(setup):
  model, tx, init, images, train_step = setup
  state = init(jax.random.PRNGKey(1))
  new, metrics = train_step(state, jnp.arange(B), images, jnp.array([0, 1, 0, 1]),
                            jnp.int32(2), jax.random.PRNGKey(0), jnp.bool_(False),
                            ONES)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(new)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert np.isfinite(float(metrics["loss"]))


def test_epoch_permutation_is_a_permutation_independent_of_padding():
  key = jax.random.PRNGKey(7)
  short = np.asarray(step_lib.epoch_permutation(key, jnp.int32(10), 10))
  long = np.asarray(step_lib.epoch_permutation(key, jnp.int32(10), 37))
  np.testing.assert_array_equal(np.sort(short), np.arange(10))
  np.testing.assert_array_equal(long[:10], short)
  np.testing.assert_array_equal(long[10:], np.arange(10, 37))
  other = np.asarray(step_lib.epoch_permutation(jax.random.PRNGKey(8),
                                                jnp.int32(10), 10))
  assert not np.array_equal(other, short)


def test_sample_batch_visits_every_row_once_per_epoch():
  key = jax.random.PRNGKey(3)
  n, length, b = 10, 16, 4  # ceil(10 / 4) = 3 steps per epoch, last has 2 rows.
  sample = jax.jit(step_lib.sample_batch, static_argnums=(3, 4))
  for epoch in range(2):
    seen, weights = [], []
    for s in range(3):
      pos, w = sample(key, jnp.int32(epoch * 3 + s), jnp.int32(n), length, b)
      seen.extend(np.asarray(pos)[np.asarray(w) > 0].tolist())
      weights.append(float(np.sum(w)))
    assert sorted(seen) == list(range(n))
    assert weights == [4.0, 4.0, 2.0]


def test_runner_matches_python_loop_and_stops_each_model_at_its_own_steps(setup):
  model, tx, init, images, train_step = setup
  q, length = 3, 12
  rng = np.random.default_rng(2)
  n = np.array([12, 5, 9], np.int32)
  epochs = 2
  tasks = {"idx": np.zeros((q, length), np.int32),
           "labels": np.zeros((q, length), np.int32), "n": n,
           "num_classes": np.array([2, 3, 5], np.int32),
           "num_steps": (epochs * -(-n // B)).astype(np.int32)}
  for i in range(q):
    tasks["idx"][i, :n[i]] = rng.choice(24, n[i], replace=False)
    tasks["labels"][i, :n[i]] = rng.integers(0, tasks["num_classes"][i], n[i])
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(0), i))(
      jnp.arange(q))
  states = jax.vmap(init)(jax.random.split(jax.random.PRNGKey(1), q))
  runner = step_lib.make_multi_step_runner(model, tx, B, steps_per_call=4)
  total = int(tasks["num_steps"].max())  # 6 steps: two calls of 4.
  with jax.default_matmul_precision("highest"):
    stacked = jax.tree.map(jnp.copy, states)
    for t0 in range(0, total, 4):
      stacked, losses = runner(stacked, jax.tree.map(jnp.asarray, tasks), keys,
                               jnp.int32(t0), images, jnp.ones(q, bool))
    # Reference: each model alone, its own steps in a Python loop.
    sample = jax.jit(step_lib.sample_batch, static_argnums=(3, 4))
    for i in range(q):
      state = jax.tree.map(lambda a, i=i: a[i], states)
      for t in range(int(tasks["num_steps"][i])):
        pos, w = sample(keys[i], jnp.int32(t), jnp.int32(n[i]), length, B)
        pos = np.asarray(pos)
        state, _ = train_step(state, jnp.asarray(tasks["idx"][i][pos]), images,
                              jnp.asarray(tasks["labels"][i][pos]),
                              jnp.int32(tasks["num_classes"][i]),
                              jax.random.fold_in(keys[i], t), jnp.bool_(True), w)
      for a, b in zip(jax.tree.leaves(state),
                      jax.tree.leaves(jax.tree.map(lambda a, i=i: a[i], stacked))):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5,
                                   atol=1e-6)
      # Adam's step count = the model's own number of steps (then frozen).
      assert int(stacked["opt"][0].count[i]) == tasks["num_steps"][i]
  # Losses are zero exactly where a model was inactive (last call: t = 4..7).
  assert np.all(np.asarray(losses)[2:, 1] == 0)  # Model 1 stopped after 4 steps.


def test_evaluator_matches_numpy_on_the_first_n_rows(setup):
  model, tx, init, images, _ = setup
  params = jax.vmap(lambda k: init(k)["params"])(jax.random.split(
      jax.random.PRNGKey(4), 2))
  evaluate = step_lib.make_evaluator(model, eval_batch=8)
  idx = np.array([np.arange(16), np.arange(16)[::-1]], np.int32)
  labels = np.array([np.arange(16) % 2, np.arange(16) % 3], np.int32)
  n = np.array([11, 0], np.int32)
  out = evaluate(params, idx, labels, n, np.array([2, 3], np.int32), images)
  logits, _ = model.apply({"params": jax.tree.map(lambda a: a[0], params)},
                          images[idx[0, :11]])
  l64 = np.asarray(logits, np.float64)[:, :2]
  y = labels[0, :11]
  want_loss = np.mean(logsumexp(l64, axis=1) - l64[np.arange(11), y])
  np.testing.assert_allclose(float(out["loss"][0]), want_loss, rtol=1e-5)
  np.testing.assert_allclose(float(out["accuracy"][0]),
                             np.mean(np.argmax(l64, 1) == y), rtol=1e-6)
  assert np.isnan(float(out["loss"][1]))  # No rows: NaN, not 0.
