"""Tests of ``transfer.fit``: many CNNs at once with per-model early stopping.

One tiny synthetic pool (56 images 20x20, two classes marked by a bright square)
and stacks of 3 lenet20 models with ragged row sets, batch 8, at most 4 epochs.
Every run in the module has the same shapes, so the epoch compiles once per
optimizer (plain Adam; frozen conv) plus once for the single-model stack.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transferjax.errors import ConfigError, TrainingError
from transferjax.models import make_cnn
from transferjax.transfer import fit as fit_lib
from transferjax.transfer.fit import FitConfig, fit_models

CFG = FitConfig(batch_size=8, learning_rate=3e-3, max_epochs=4, patience=1,
                budgets=(1, 4, 99))
WIDTH, VAL_WIDTH = 24, 8  # Padded row widths shared by every run (one compile).
NAMES = ["model-a", "model-b", "model-c"]


def _pool():
  """56 images: rows 0..47 labeled by the pattern; rows 48..55 repeat rows 20..27
  (model c's training rows) with the labels flipped."""
  rng = np.random.default_rng(0)
  labels = np.arange(56) % 2
  images = rng.random((56, 20, 20, 1)).astype(np.float32) * 0.3
  images[labels == 1, 4:12, 4:12, 0] += 0.7
  images[48:] = images[20:28]
  labels[48:] = 1 - labels[20:28]
  return images, labels.astype(np.int32)


def _pad(sets, width):
  idx = np.zeros((len(sets), width), np.int32)
  for m, rows in enumerate(sets):
    idx[m, :len(rows)] = rows
  return idx, np.array([len(r) for r in sets], np.int32)


# Model a: 16 rows, honest val; model b: 20 rows (2.5 batches), honest val;
# model c: 12 rows, validated on copies of its own training rows with flipped
# labels, so it stops before max_epochs (at epoch 3 with these seeds).
TRAIN_SETS = [np.arange(0, 16), np.arange(4, 24), np.arange(20, 32)]
VAL_SETS = [np.arange(32, 40), np.arange(40, 48), np.arange(48, 56)]


def _init(m=3):
  """Lecun-normal kernels and zero biases drawn in NumPy (no init compile)."""
  shapes = jax.eval_shape(make_cnn("lenet20", 2).init, jax.random.key(0),
                          jnp.zeros((1, 20, 20, 1)))["params"]
  rng = np.random.default_rng(0)

  def draw(s):
    if len(s.shape) == 1:
      return np.zeros((m,) + s.shape, np.float32)
    fan_in = int(np.prod(s.shape[:-1]))
    return (rng.standard_normal((m,) + s.shape) / np.sqrt(fan_in)).astype(np.float32)

  return jax.tree.map(lambda s: jnp.asarray(draw(s)), shapes)


def _keys(m=3):
  return jax.random.split(jax.random.key(1), m)


def _fit(cfg=CFG, init=None, images=None, sets=(0, 1, 2), keys=None, **kw):
  pool_images, labels = _pool()
  images = pool_images if images is None else images
  sets = list(sets)
  init = _init() if init is None else init
  keys = _keys() if keys is None else keys
  ti, tl = _pad([TRAIN_SETS[i] for i in sets], WIDTH)
  vi, vl = _pad([VAL_SETS[i] for i in sets], VAL_WIDTH)
  return fit_models(init, images, labels, ti, tl, vi, vl, np.full(len(sets), 2),
                    keys, cfg, eval_images=pool_images[:10],
                    names=[NAMES[i] for i in sets], **kw)


def _model(tree, i):
  return jax.tree.map(lambda x: np.asarray(x)[i], tree)


def _assert_trees_close(a, b, rtol=1e-5, atol=1e-5):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


@pytest.fixture(scope="module", autouse=True)
def _optimized_xla():
  # These tests run ~25 epochs; fully optimized XLA runs an epoch ~7x faster,
  # which outweighs its slower compiles here. Restored for the other modules.
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", False)
  yield
  jax.config.update("jax_disable_most_optimizations", old)


@pytest.fixture(scope="module")
def stack_init():
  init = _init()
  return _fit(init=init), init


@pytest.fixture(scope="module")
def stack(stack_init):
  return stack_init[0]


def test_config_errors():
  for bad in (dict(batch_size=0), dict(max_epochs=0), dict(patience=0)):
    with pytest.raises(ConfigError, match="must be >= 1"):
      FitConfig(**bad)
  with pytest.raises(ConfigError, match="learning_rate"):
    FitConfig(learning_rate=0.0)
  images, labels = _pool()
  ti, tl = _pad([TRAIN_SETS[0], np.arange(0), TRAIN_SETS[2]], WIDTH)
  vi, vl = _pad(VAL_SETS, VAL_WIDTH)
  with pytest.raises(ConfigError, match="at least one training"):
    fit_models(_init(), images, labels, ti, tl, vi, vl, np.full(3, 2), _keys(), CFG)


def test_result_shapes(stack):
  assert stack.best_epoch.shape == stack.epochs_run.shape == (3,)
  assert stack.best_val_loss.shape == (3,)
  assert stack.eval_logits.shape == (3, 10, 2)
  # Budgets past max_epochs are dropped; the others are all recorded.
  assert sorted(stack.budget_logits) == [1, 4]
  for b in (1, 4):
    assert stack.budget_logits[b].shape == (3, 10, 2)
  assert jax.tree.leaves(stack.params)[0].shape[0] == 3
  assert np.all(np.isfinite(stack.eval_logits))


def test_init_params_not_consumed(stack_init):
  # The epoch donates its state; a caller's device arrays must survive the call.
  _, init = stack_init
  for x, y in zip(jax.tree.leaves(init), jax.tree.leaves(_init())):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_model_in_stack_equals_model_alone(stack):
  alone = _fit(init=jax.tree.map(lambda x: x[1:2], _init()), sets=(1,),
               keys=_keys()[1:2])
  _assert_trees_close(_model(stack.params, 1), _model(alone.params, 0))
  assert stack.best_epoch[1] == alone.best_epoch[0]
  assert stack.epochs_run[1] == alone.epochs_run[0]
  np.testing.assert_allclose(stack.best_val_loss[1], alone.best_val_loss[0],
                             rtol=1e-5)
  np.testing.assert_allclose(stack.eval_logits[1], alone.eval_logits[0],
                             rtol=1e-4, atol=1e-4)
  for b in (1, 4):
    np.testing.assert_allclose(stack.budget_logits[b][1], alone.budget_logits[b][0],
                               rtol=1e-4, atol=1e-4)


def test_sharded_stack_equals_one_device_and_model_alone(stack):
  # The engine's CPU path (lax.map, split over the four test devices) gives
  # every model the same ops alone, in a stack and in a device's share: the
  # same bits, not just close numbers.
  one_device = _fit(devices=jax.devices()[:1])
  alone = _fit(init=jax.tree.map(lambda x: x[2:3], _init()), sets=(2,),
               keys=_keys()[2:3], devices=jax.devices()[:1])
  if jax.default_backend() != "cpu":
    pytest.skip("bit-identity is a property of the lax.map (CPU) path")
  for other, rows in ((one_device, slice(0, 3)), (alone, slice(2, 3))):
    for x, y in zip(jax.tree.leaves(stack.params), jax.tree.leaves(other.params)):
      np.testing.assert_array_equal(np.asarray(x)[rows], np.asarray(y))
    np.testing.assert_array_equal(stack.best_epoch[rows], other.best_epoch)
    np.testing.assert_array_equal(stack.epochs_run[rows], other.epochs_run)
    np.testing.assert_array_equal(stack.best_val_loss[rows], other.best_val_loss)
    np.testing.assert_array_equal(stack.eval_logits[rows], other.eval_logits)
    for b in (1, 4):
      np.testing.assert_array_equal(stack.budget_logits[b][rows],
                                    other.budget_logits[b])


def test_early_stopping_policy():
  es = fit_lib.engine.EarlyStopping.start(3, patience=2)
  es.active[2] = False  # e.g. a padding model: never trains, never updates
  assert es.update(1, np.array([1.0, 1.0, 0.0])).tolist() == [True, True, False]
  assert es.update(2, np.array([0.5, 1.0, 0.0])).tolist() == [True, False, False]
  assert es.update(3, np.array([0.6, 1.0 - 1e-8, 0.0])).tolist() == [False] * 3
  # Model 1: two epochs without an improvement larger than min_delta -> stops.
  assert es.active.tolist() == [True, False, False]
  assert es.best_epoch.tolist() == [2, 1, 0]
  assert es.epochs_run.tolist() == [3, 3, 0]
  np.testing.assert_array_equal(es.best_loss, [0.5, 1.0, np.inf])


def test_early_stopping_bookkeeping(stack):
  # A model stops after `patience` epochs without a lower validation loss.
  np.testing.assert_array_equal(
      stack.epochs_run, np.minimum(stack.best_epoch + CFG.patience, CFG.max_epochs))
  # Model c (flipped validation labels) stops early, after its best epoch.
  assert stack.best_epoch[2] < stack.epochs_run[2] < CFG.max_epochs
  # best_val_loss is the float64 cross-entropy of the returned (best) params.
  images, labels = _pool()
  model = make_cnn("lenet20", 2)
  for m in range(3):
    logits, _ = model.apply({"params": _model(stack.params, m)},
                            images[VAL_SETS[m]])
    logits = np.asarray(logits, np.float64)
    logp = logits - np.logaddexp(logits[:, 0], logits[:, 1])[:, None]
    ce = -np.mean(logp[np.arange(len(logp)), labels[VAL_SETS[m]]])
    np.testing.assert_allclose(stack.best_val_loss[m], ce, rtol=1e-4, atol=1e-6)


def test_best_params_are_those_of_best_epoch(stack):
  # Training only up to model c's best epoch must give the same parameters: the
  # epochs it ran after that were not kept.
  best = int(stack.best_epoch[2])
  short = _fit(dataclasses.replace(CFG, max_epochs=best))
  _assert_trees_close(_model(stack.params, 2), _model(short.params, 2))
  # Budget 1 of the long run = the best (= only) params of a 1-epoch run.
  one = _fit(dataclasses.replace(CFG, max_epochs=1))
  np.testing.assert_allclose(stack.budget_logits[1], one.eval_logits,
                             rtol=1e-4, atol=1e-4)


def test_early_stopped_model_keeps_training_to_budget(stack):
  # Model c stopped before epoch 4, yet its budget-4 logits are those of a run
  # with no early stopping at all.
  assert stack.epochs_run[2] < 4
  no_stop = _fit(dataclasses.replace(CFG, patience=10))
  assert no_stop.epochs_run.tolist() == [4, 4, 4]
  np.testing.assert_allclose(stack.budget_logits[4], no_stop.budget_logits[4],
                             rtol=1e-4, atol=1e-4)


def test_inactive_model_state_is_unchanged():
  images, labels = _pool()
  # One device: three models do not split over the test's four.
  fitter = fit_lib._fitter(dataclasses.replace(CFG, max_epochs=1, patience=1,
                                               budgets=()),
                           fit_lib.placement.model_mesh(jax.devices()[:1]))
  params = _init()
  state = {"params": params, "opt": fitter.init_opt(params)}
  before = jax.tree.map(lambda x: np.asarray(x).copy(), state)
  ti, tl = _pad(TRAIN_SETS, WIDTH)
  active = jnp.asarray([True, False, True])
  new, loss = fitter.epoch(active, jax.tree.map(jnp.array, state), jnp.asarray(ti),
                           jnp.asarray(tl), jnp.full(3, 2, jnp.int32), _keys(),
                           jnp.asarray(images), jnp.asarray(labels), jnp.int32(1))
  for old, cur in zip(jax.tree.leaves(before), jax.tree.leaves(new)):
    np.testing.assert_array_equal(np.asarray(cur)[1], old[1])
  moved = [not np.array_equal(np.asarray(c)[0], o[0])
           for o, c in zip(jax.tree.leaves(before["params"]),
                           jax.tree.leaves(new["params"]))]
  assert all(moved)
  assert np.all(np.isfinite(np.asarray(loss)))


def test_freeze_transferred_keeps_conv_layers():
  init = _init()
  res = _fit(dataclasses.replace(CFG, freeze_transferred=True, budgets=()), init=init)
  for name in ("conv1", "conv2"):
    for x, y in zip(jax.tree.leaves(res.params[name]), jax.tree.leaves(init[name])):
      np.testing.assert_array_equal(x, np.asarray(y))
  for name in ("fc", "head"):
    for x, y in zip(jax.tree.leaves(res.params[name]), jax.tree.leaves(init[name])):
      assert np.all(np.any(x.reshape(3, -1) != np.asarray(y).reshape(3, -1), axis=1))


def test_non_finite_loss_names_the_model():
  images, _ = _pool()
  images = images.copy()
  images[24:32] = np.nan  # Only model c trains on rows 24..31.
  with pytest.raises(TrainingError, match=r"\['model-c'\]"):
    _fit(images=images)


def test_accelerator_path_matches_cpu_path(stack, monkeypatch):
  # The engine's "vmap" loop (the accelerator default; here on the four CPU
  # devices, split by jit) trains the same models as the "map" loop, to float
  # rounding (batched and single-model convolutions round differently).
  monkeypatch.setattr(fit_lib.backend, "default_model_loop", lambda: "vmap")
  fit_lib._fitter.cache_clear()
  try:
    vmapped = _fit()
  finally:
    fit_lib._fitter.cache_clear()
  np.testing.assert_array_equal(vmapped.epochs_run, stack.epochs_run)
  np.testing.assert_array_equal(vmapped.best_epoch, stack.best_epoch)
  _assert_trees_close(vmapped.params, stack.params, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(vmapped.eval_logits, stack.eval_logits,
                             rtol=1e-4, atol=1e-4)
