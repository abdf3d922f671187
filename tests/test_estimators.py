"""Exactness tests for transferjax.estimators: references, invariances, errors.

Statistical anchors (closed forms, Monte Carlo truths) are in
test_estimators_stats.py.
"""
import functools

import jax
import numpy as np
import pytest
from scipy.special import digamma
from scipy.stats import entropy as scipy_entropy
from sklearn.decomposition import PCA
from sklearn.feature_selection._mutual_info import _compute_mi_cd

import transferjax.estimators as E
from transferjax.errors import EstimatorError
from transferjax.estimators import knn_reference as reference


def _fp_numpy(y, f, t, k, metric):
  """Float64 brute-force class-aware FP, written from the definition."""
  f = (f - f.mean(0)) / f.std(0)
  t = (t - t.mean(0)) / t.std(0)
  n = len(y)

  def dist(x):
    diff = np.abs(x[:, None, :] - x[None, :, :])
    return diff.max(-1) if metric == "max" else np.sqrt((diff ** 2).sum(-1))

  d_f, d_t = dist(f), dist(t)
  total = 0.0
  for i in range(n):
    others = np.arange(n) != i
    same = others & (y == y[i])
    d_ft = np.maximum(d_f[i], d_t[i])
    eps = np.sort(d_ft[same])[k - 1]
    n_ft = np.sum(others & (d_ft < eps))
    n_yt = np.sum(same & (d_t[i] < eps))
    n_t = np.sum(others & (d_t[i] < eps))
    total += digamma(k) - digamma(n_ft + 1) - digamma(n_yt + 1) + digamma(
        n_t + 1)
  return total / n


def _mixed_data(seed, n=300, d_f=5, d_t=2, classes=3):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, classes, n)
  f = rng.normal(size=(n, d_f)) + 0.7 * y[:, None] * rng.normal(size=d_f)
  t = rng.normal(size=(n, d_t)) + 0.5 * y[:, None]
  return y, f.astype(np.float32), t.astype(np.float32)


# --------------------------------------------------------------- plug-in


def test_plugin_xor_exact():
  x = np.array([0, 0, 0, 0, 1, 1, 1, 1])
  y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
  z = x ^ y
  cmi = E.cmi_plugin_codes(y, x, z, n_y=2, n_f=2, n_t=2, miller_madow=False)
  mi = E.cmi_plugin_codes(y, x, np.zeros(8, int), n_y=2, n_f=2, n_t=1,
                          miller_madow=False)
  assert abs(float(cmi) - np.log(2)) < 1e-6
  assert abs(float(mi)) < 1e-6


@pytest.mark.parametrize("mm", [False, True])
def test_plugin_y_copy_of_t_is_zero(mm):
  rng = np.random.default_rng(0)
  t = rng.integers(0, 4, 500)
  f = rng.integers(0, 5, 500)
  cmi = E.cmi_plugin_codes(t, f, t, n_y=4, n_f=5, n_t=4, miller_madow=mm)
  assert abs(float(cmi)) < 1e-7


def test_plugin_matches_scipy_entropies_with_miller_madow():
  rng = np.random.default_rng(1)
  n = 400
  y = rng.integers(0, 3, n)
  fc = (y + rng.integers(0, 3, n)) % 4
  tc = rng.integers(0, 2, n)

  def h(*codes):
    _, counts = np.unique(np.stack(codes, 1), axis=0, return_counts=True)
    return scipy_entropy(counts) + (len(counts) - 1) / (2 * n)

  want = h(y, tc) + h(fc, tc) - h(y, fc, tc) - h(tc)
  got = E.cmi_plugin_codes(y, fc, tc, n_y=3, n_f=4, n_t=2, miller_madow=True)
  assert abs(float(got) - want) < 1e-5
  assert abs(float(E.entropy_plugin(y, 3)) - scipy_entropy(
      np.bincount(y))) < 1e-6


def test_binned_none_matches_numpy_quantile_codes():
  rng = np.random.default_rng(2)
  n = 600
  y = rng.integers(0, 2, n)
  f = rng.normal(size=n) + y
  t = rng.normal(size=n) + 0.5 * y

  def codes(x, b):  # equal-frequency bins, edges at order statistics
    edges = np.sort(x)[(np.arange(1, b) * n) // b]
    return np.searchsorted(edges, x, side="right")

  want = E.cmi_plugin_codes(y, codes(f, 4), codes(t, 3), n_y=2, n_f=4,
                            n_t=3)
  got = E.cmi_binned(y, f, t, bins_f=4, bins_t=3, f_reduce="none")
  assert abs(float(got) - float(want)) < 1e-6
  # Row order does not matter (quantile codes keep ties together).
  perm = rng.permutation(n)
  got_p = E.cmi_binned(y[perm], f[perm], t[perm], bins_f=4, bins_t=3,
                       f_reduce="none")
  assert abs(float(got_p) - float(got)) < 1e-6


def test_conditional_entropy_binned_is_plugin_bound():
  rng = np.random.default_rng(3)
  n = 800
  y = rng.integers(0, 3, n)
  t = rng.normal(size=(n, 2)) + y[:, None]
  tc, n_t = E.t_codes(t, bins_t=3)
  h = E.conditional_entropy_y_given_t(y, t, bins_t=3)
  # H(Y | T~) = H(Y, T~) - H(T~) from scipy.
  _, c_yt = np.unique(np.stack([y, np.asarray(tc)], 1), axis=0,
                      return_counts=True)
  want = scipy_entropy(c_yt) - scipy_entropy(np.bincount(np.asarray(tc)))
  assert abs(float(h) - want) < 1e-5
  # Plug-in I(Y; F~ | T~) <= H(Y | T~), with equality for F~ = Y.
  f = rng.normal(size=(n, 3)) + y[:, None]
  cmi = E.cmi_binned(y, f, t, bins_t=3, miller_madow=False)
  assert float(cmi) <= float(h) + 1e-6
  eq = E.cmi_plugin_codes(y, y, tc, n_y=3, n_f=3, n_t=n_t, miller_madow=False)
  assert abs(float(eq) - float(h)) < 1e-5


def test_reduce_dim_matches_sklearn_pca():
  rng = np.random.default_rng(4)
  fs = rng.normal(size=(3, 200, 6)) @ rng.normal(size=(6, 6))
  out = np.asarray(E.reduce_dim(fs, 3, standardize=False))
  assert out.shape == (3, 200, 3)
  for i in range(3):
    want = PCA(3).fit_transform(fs[i])
    np.testing.assert_allclose(np.abs(out[i]), np.abs(want), atol=1e-3)
  padded = np.asarray(E.reduce_dim(fs[0, :, :2], 4))
  assert padded.shape == (200, 4) and np.all(padded[:, 2:] == 0)


# --------------------------------------------------------------- k-NN


@pytest.mark.parametrize("metric", ["max", "euclidean"])
def test_cmi_knn_matches_float64_bruteforce(metric):
  y, f, t = _mixed_data(0)
  want = _fp_numpy(y, f.astype(np.float64), t.astype(np.float64), 3, metric)
  # jitter=0: the reference is the tie-free definition (the default 1e-4
  # jitter moves this estimate by ~1e-3); f_scale="none": the plain estimator.
  got = E.cmi_knn(y, f, t, k=3, metric=metric, jitter=0.0, f_scale="none")
  assert abs(float(got) - want) < 1e-4
  # The default (f_scale="rms") is the same estimator on rescaled blocks.
  fs, ts, _ = E.scale_blocks(f, t)
  want_rms = E.cmi_knn(y, fs, ts, k=3, metric=metric, f_scale="none",
                       standardize=False, jitter=0.0)
  got_rms = E.cmi_knn(y, f, t, k=3, metric=metric, jitter=0.0)
  assert abs(float(got_rms) - float(want_rms)) < 1e-6
  # The cKDTree reference (used by the benchmark) is the same estimator.
  ref = reference.cmi_knn_kdtree(y, f, t, k=3, metric=metric)
  assert abs(ref - want) < 1e-9


@pytest.mark.parametrize("metric", ["max", "euclidean"])
def test_row_block_equals_full(metric):
  y, f, t = _mixed_data(1, n=250)
  full, loc_full = E.cmi_knn(y, f, t, metric=metric, row_block=250,
                             return_local=True)
  blk, loc_blk = E.cmi_knn(y, f, t, metric=metric, row_block=7,
                           return_local=True)
  assert abs(float(full) - float(blk)) < 1e-6
  np.testing.assert_allclose(np.asarray(loc_full), np.asarray(loc_blk),
                             atol=1e-6)


def test_mi_knn_matches_sklearn_compute_mi_cd():
  rng = np.random.default_rng(5)
  # Include a 3-member class (k_i = 2) and a singleton (dropped), so the
  # small-class rule is checked against sklearn too.
  y = np.concatenate([rng.integers(0, 3, 400), [3, 3, 3, 4]])
  x = rng.normal(size=y.size) + 0.8 * y
  want = _compute_mi_cd(x, y, 3)
  assert want > 0.05  # sklearn clips at 0; keep away from the clip
  with pytest.warns(UserWarning, match="min\\(k, N_y - 1\\)"):
    got = E.mi_knn(y, x, k=3, metric="euclidean", jitter=0.0)
  assert abs(float(got) - want) < 1e-4
  # In 1-D every metric is |x_i - x_j|.
  assert abs(float(E.mi_knn(y, x, k=3, metric="max", jitter=0.0))
             - float(got)) < 1e-6


def test_constant_t_reduces_to_ross():
  y, f, _ = _mixed_data(6, n=200)
  a = E.cmi_knn(y, f, np.ones((200, 1)))
  b = E.mi_knn(y, f)
  assert abs(float(a) - float(b)) < 1e-6


@pytest.mark.parametrize("metric", ["max", "euclidean"])
def test_many_equals_loop(metric):
  y, f, t = _mixed_data(7, n=120)
  rng = np.random.default_rng(7)
  fs = np.stack([f, f ** 3, rng.normal(size=f.shape)]).astype(np.float32)
  key = jax.random.key(3)
  many = E.cmi_knn_many(y, fs, t, metric=metric, jitter=1e-6, key=key)
  loop = [E.cmi_knn(y, fs[i], t, metric=metric, jitter=1e-6,
                    key=jax.random.fold_in(key, i)) for i in range(3)]
  np.testing.assert_allclose(np.asarray(many), np.asarray(loop), atol=1e-6)
  many2 = E.cmi_knn_many(y, fs, t, metric=metric, jitter=1e-6, key=key,
                         batch_size=2)
  np.testing.assert_allclose(np.asarray(many2), np.asarray(loop), atol=1e-6)


def test_binned_many_equals_loop():
  y, f, t = _mixed_data(8, n=300)
  fs = np.stack([f, -f, 2 * f + 1]).astype(np.float32)
  many = E.cmi_binned_many(y, fs, t, bins_t=3)
  loop = [E.cmi_binned(y, fi, t, bins_t=3) for fi in fs]
  np.testing.assert_allclose(np.asarray(many), np.asarray(loop), atol=1e-6)


def test_scale_and_permutation_invariance():
  y, f, t = _mixed_data(9, n=400)
  # Without jitter (its noise is drawn per row position and per scale).
  cmi = lambda *a, **kw: E.cmi_knn(*a, jitter=0.0, **kw)
  base = float(cmi(y, f, t))
  # Power-of-two scaling is exact in float, so standardized inputs are
  # bit-identical; a general affine map may flip a near-tie (one count
  # moves the mean by ~1e-4), hence the looser bound.
  assert abs(float(cmi(y, f * np.float32(64), t)) - base) < 1e-6
  assert abs(float(cmi(y, 100 * f + 5, t / 3 - 1)) - base) < 1e-3
  perm = np.random.default_rng(9).permutation(400)
  raw = float(cmi(y, f, t, standardize=False, f_scale="none"))
  raw_p = float(cmi(y[perm], f[perm], t[perm], standardize=False, f_scale="none"))
  assert abs(raw - raw_p) < 1e-6
  assert abs(float(cmi(y[perm], f[perm], t[perm])) - base) < 1e-3
  # With the default jitter: the same key gives the same estimate, and the
  # estimate stays within the jitter's effect of the tie-free one.
  assert float(E.cmi_knn(y, f, t)) == float(E.cmi_knn(y, f, t))
  assert abs(float(E.cmi_knn(y, f, t)) - base) < 5e-3


def test_tiny_classes_finite_and_local_nan_for_singletons():
  rng = np.random.default_rng(10)
  y = np.concatenate([rng.integers(0, 2, 300), [2, 2], [3]])
  f = rng.normal(size=(y.size, 3)) + y[:, None]
  t = rng.normal(size=(y.size, 1))
  with pytest.warns(UserWarning, match="singleton classes are dropped"):
    est, local = E.cmi_knn(y, f, t, k=3, return_local=True)
  local = np.asarray(local)
  assert np.isfinite(float(est))
  assert np.isnan(local[-1]) and np.all(np.isfinite(local[:-1]))
  assert abs(float(est) - np.mean(local[:-1])) < 1e-6


def test_chain_rule_variant_close_to_direct():
  y, f, t = _mixed_data(11, n=600, d_f=2, d_t=1, classes=2)
  direct = float(E.cmi_knn(y, f, t))
  chain = float(E.cmi_knn_chain(y, f, t))
  want_chain = float(E.mi_knn(y, np.concatenate([f, t], 1))) - float(
      E.mi_knn(y, t))
  assert abs(chain - want_chain) < 1e-6
  assert abs(chain - direct) < 0.05


# --------------------------------------------------------------- null


def test_permute_within_t_bins_keeps_bin_label_counts():
  rng = np.random.default_rng(12)
  y = rng.integers(0, 3, 500)
  t = rng.normal(size=(500, 1)) + y[:, None]
  key = jax.random.key(0)
  yp = np.asarray(E.permute_within_t_bins(y, t, key, bins_t=4))
  tc = np.asarray(E.t_codes(t, bins_t=4)[0])
  for b in range(4):
    np.testing.assert_array_equal(np.bincount(y[tc == b], minlength=3),
                                  np.bincount(yp[tc == b], minlength=3))
  assert np.mean(yp != y) > 0.2  # it did permute


def test_null_cmi_near_zero_and_below_signal():
  # Binary Gaussian classes, (dF^2, dT^2) = (4, 1): truth 0.277. The local
  # null keeps p(y | t) and breaks F; its mean is near 0.
  rng = np.random.default_rng(13)
  n = 400
  y = rng.integers(0, 2, n)
  s = (2 * y - 1)[:, None]
  f = rng.normal(size=(n, 2)) + s * np.array([1.0, 0.0])
  t = rng.normal(size=(n, 1)) + 0.5 * s
  est = float(E.cmi_knn(y, f, t))
  cmi3 = functools.partial(E.cmi_knn, k=3)
  null, vals = E.null_cmi(cmi3, y, f, t, jax.random.key(1), n_perm=3,
                          return_all=True)
  assert vals.shape == (3,)
  assert abs(float(null)) < 0.03
  assert est - float(null) > 0.2
  null_bins = E.null_cmi(cmi3, y, f, t, jax.random.key(1), n_perm=2,
                         method="tbins")
  assert abs(float(null_bins)) < 0.03


def test_null_of_binned_estimator_near_zero_under_null():
  rng = np.random.default_rng(16)
  n = 1000
  y = rng.integers(0, 2, n)
  t = rng.normal(size=(n, 1)) + y[:, None]
  f = rng.normal(size=(n, 2))
  null = E.null_cmi(E.cmi_binned, y, f, t, jax.random.key(2), n_perm=3,
                    method="tbins")
  assert abs(float(null)) < 0.01


# --------------------------------------------------------------- errors


def test_errors_are_clear():
  y, f, t = _mixed_data(14, n=50)
  bad = f.copy()
  bad[3, 1] = np.nan
  with pytest.raises(EstimatorError, match="NaN or inf in 1 row"):
    E.cmi_knn(y, bad, t)
  with pytest.raises(EstimatorError, match="t has 49 rows but y has 50"):
    E.cmi_knn(y, f, t[:49])
  with pytest.raises(EstimatorError, match="lower k"):
    E.cmi_knn(y, f, t, k=50)
  with pytest.raises(EstimatorError, match="single class"):
    E.cmi_knn(np.zeros(50, int), f, t)
  with pytest.raises(EstimatorError, match="non-integer values"):
    E.cmi_knn(y + 0.5, f, t)
  with pytest.raises(EstimatorError, match="jitter must be a finite value"):
    E.cmi_knn(y, f, t, jitter=-1.0)
  with pytest.raises(EstimatorError, match="metric must be one of"):
    E.cmi_knn(y, f, t, metric="cosine")
  with pytest.raises(EstimatorError, match="fewer than 2 classes remain"):
    E.cmi_knn(np.r_[np.zeros(48, int), 1, 2], f, t)
  with pytest.raises(EstimatorError, match=r"must lie in \[0, 2\)"):
    E.cmi_plugin_codes(y, y, y, n_y=2, n_f=3, n_t=3)
  with pytest.raises(EstimatorError, match="too many to count"):
    E.cmi_binned(y, f, t, f_reduce="none", bins_f=64)
  with pytest.raises(EstimatorError, match=r"\[q, n, d\]"):
    E.cmi_knn_many(y, f[:, :, None, None], t)


def test_integral_float_labels_accepted():
  y, f, t = _mixed_data(15, n=100)
  a = E.cmi_knn(y.astype(np.float32), f, t)
  b = E.cmi_knn(y, f, t)
  assert float(a) == float(b)
