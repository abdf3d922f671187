"""Tests for the Gaussian-Bernoulli RBM baseline (transferjax.baselines.rbm)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

from transferjax.baselines import rbm
from transferjax.errors import DataError

# One training config for the whole file: every distinct static config compiles.
_KW = dict(num_hidden=16, batch_size=32, lr=1e-2)


@pytest.fixture(scope="module")
def digits():
  d = load_digits()
  x = (d.data / 16.0).astype(np.float32)  # [1797, 64] in [0, 1]
  perm = np.random.default_rng(0).permutation(len(x))
  return x[perm], d.target[perm]


def test_reconstruct_matches_float64_reference():
  rng = np.random.default_rng(0)
  v, h, n = 12, 5, 7
  p = {"w": rng.normal(size=(v, h)), "b_vis": rng.normal(size=v),
       "b_hid": rng.normal(size=h), "mean": rng.random(v), "std": np.array(0.3)}
  x = rng.random((n, v))
  z = (x - p["mean"]) / p["std"]
  hid = 1 / (1 + np.exp(-(z @ p["w"] + p["b_hid"])))
  ref = (hid @ p["w"].T + p["b_vis"]) * p["std"] + p["mean"]
  params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p)
  np.testing.assert_allclose(rbm.reconstruct(params, x), ref, rtol=1e-4, atol=1e-5)
  assert float(rbm.reconstruction_error(params, x)) == pytest.approx(
      np.mean((x - ref) ** 2), rel=1e-4)
  # Images [n, h, w, c] are flattened.
  np.testing.assert_allclose(rbm.reconstruct(params, x.reshape(n, 3, 4, 1)),
                             ref, rtol=1e-4, atol=1e-5)


def test_untrained_error_is_pixel_variance(digits):
  """W = 0, b = 0: the reconstruction is the stored mean; error = mean variance."""
  x, _ = digits
  train = x[:600]  # the same shape in every single-RBM test: one compile
  p = rbm.train_rbm(jax.random.key(0), train, num_steps=0, **_KW)
  np.testing.assert_allclose(p["mean"], train.mean(0), atol=1e-5)
  assert float(p["std"]) == pytest.approx(np.sqrt(train.var(0).mean()), rel=1e-4)
  zero = {**p, "w": jnp.zeros_like(p["w"])}
  assert float(rbm.reconstruction_error(zero, train)) == pytest.approx(
      train.var(0).mean(), rel=1e-4)


def test_cd1_lowers_reconstruction_error(digits):
  x, _ = digits
  train = x[:600]
  before = rbm.train_rbm(jax.random.key(1), train, num_steps=0, **_KW)
  after = rbm.train_rbm(jax.random.key(1), train, num_steps=300, **_KW)
  e0 = float(rbm.reconstruction_error(before, train))
  e1 = float(rbm.reconstruction_error(after, train))
  assert e1 < 0.7 * e0


def test_target_trained_rbm_beats_noise_trained(digits):
  x, _ = digits
  target_train, target_test = x[:600], x[1500:]
  noise = np.random.default_rng(0).random(target_train.shape).astype(np.float32)
  images = np.concatenate([target_train, noise])
  index_sets = np.stack([np.arange(600), 600 + np.arange(600)])
  params = rbm.train_rbms(jax.random.key(2), images, index_sets, [600, 600], [0, 1],
                          num_steps=300, **_KW)
  scores = np.asarray(rbm.rbm_scores(params, target_test))
  assert scores.shape == (2,)
  assert scores[0] > scores[1]  # higher = more similar source
  errs = [float(rbm.reconstruction_error(jax.tree.map(lambda a: a[i], params),
                                         target_test)) for i in range(2)]
  np.testing.assert_allclose(scores, -np.asarray(errs), rtol=1e-5)


def test_vmapped_equals_single(digits):
  x, y = digits
  sets = [np.flatnonzero(np.isin(y, c)) for c in ([0, 1], [2, 3, 5], [4])]
  lengths = np.array([len(s) for s in sets])
  index_sets = np.zeros((3, lengths.max()), np.int64)  # padded with row 0
  for i, s in enumerate(sets):
    index_sets[i, :len(s)] = s
  task_ids = np.array([7, 11, 3])
  root = jax.random.key(5)
  many = rbm.train_rbms(root, x, index_sets, lengths, task_ids, num_steps=40, **_KW)
  for i in (0, 2):
    one = rbm.train_rbm(jax.random.fold_in(root, task_ids[i]), x[sets[i]],
                        num_steps=40, **_KW)
    for k in one:
      np.testing.assert_allclose(many[k][i], one[k], rtol=1e-4, atol=1e-5,
                                 err_msg=k)
  # The RBMs differ between tasks (different data and keys).
  assert not np.allclose(many["w"][0], many["w"][1])


def test_deterministic_given_key(digits):
  x, _ = digits
  a = rbm.train_rbm(jax.random.key(3), x[:600], num_steps=10, **_KW)
  b = rbm.train_rbm(jax.random.key(3), x[:600], num_steps=10, **_KW)
  np.testing.assert_array_equal(a["w"], b["w"])


def test_bad_inputs(digits):
  x, _ = digits
  key = jax.random.key(0)
  with pytest.raises(DataError, match=r"length must be in \[1"):
    rbm.train_rbms(key, x, np.zeros((2, 5), int), [0, 5], [0, 1], num_steps=1,
                   **_KW)
  with pytest.raises(DataError, match="pad with 0"):
    rbm.train_rbms(key, x, -np.ones((1, 5), int), [5], [0], num_steps=1, **_KW)
  with pytest.raises(DataError, match=r"index_sets \[q, L\]"):
    rbm.train_rbms(key, x, np.zeros(5, int), [5], [0], num_steps=1, **_KW)
  with pytest.raises(DataError, match="NaN"):
    rbm.train_rbm(key, np.full((4, 64), np.nan), num_steps=1, **_KW)
  params = rbm.train_rbms(key, x, np.zeros((1, 4), int), [4], [0], num_steps=1,
                          **_KW)
  with pytest.raises(DataError, match="resize the target"):
    rbm.rbm_scores(params, np.zeros((3, 100)))
