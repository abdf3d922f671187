"""Transferability metrics: closed forms, properties and float64 NumPy references."""
import jax
import numpy as np
import pytest
import scipy.integrate
import scipy.stats
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from transferjax import metrics as M
from transferjax.errors import EstimatorError
from transferjax.metrics import hscore, reference as R, source_labels


def _data(n, d, c, sep, seed):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c
  rng.shuffle(y)
  f = rng.normal(size=(n, d)) + sep * np.eye(c, d)[y]
  return f, y


TALL = _data(90, 12, 3, 1.5, 0)     # n > d
WIDE = _data(30, 50, 3, 2.0, 1)     # n < d: the tiny-target regime


# ----------------------------------------------------------------------------
# Agreement with the float64 NumPy references (independent code paths).
# ----------------------------------------------------------------------------

FEATURE_METRICS = ["h_score", "shrinkage_h_score", "logme", "gbc", "transrate", "sfda"]


@pytest.mark.parametrize("name", FEATURE_METRICS)
@pytest.mark.parametrize("data", [TALL, WIDE], ids=["tall", "wide"])
def test_feature_metrics_match_numpy_reference(name, data):
  f, y = data
  got = getattr(M, name)(f, y)
  assert isinstance(got, np.float64)
  np.testing.assert_allclose(got, R.REFERENCES[name](f, y), rtol=1e-7, atol=1e-9)


def test_pactran_gauss_matches_scipy_lbfgs_reference():
  f, y = TALL
  # Both optimisers converge to the same optimum of a strictly convex loss.
  np.testing.assert_allclose(M.pactran_gauss(f, y), R.pactran_gauss_np(f, y), rtol=1e-7)
  noise = np.random.default_rng(16).normal(size=f.shape)
  assert M.pactran_gauss(f, y) > M.pactran_gauss(noise, y)


def test_gbc_spherical_matches_reference():
  f, y = TALL
  np.testing.assert_allclose(M.gbc(f, y, gaussian_type="spherical"),
                             R.gbc_np(f, y, "spherical"), rtol=1e-9)


def test_gbc_pca_branch_matches_sklearn_pca():
  f, y = _data(80, 70, 2, 1.0, 2)     # d > 64: projected on 64 components
  np.testing.assert_allclose(M.gbc(f, y), R.gbc_np(f, y), rtol=1e-7)


def test_leep_and_nce_match_reference():
  rng = np.random.default_rng(3)
  y = np.arange(60) % 4
  p = rng.dirichlet(np.ones(7) * 0.3, size=60)
  p[:, 2] += y * 0.5                                    # informative column
  p /= p.sum(1, keepdims=True)
  z = rng.integers(0, 7, 60)
  np.testing.assert_allclose(M.leep(p, y), R.leep_np(p, y), rtol=1e-12)
  np.testing.assert_allclose(M.nce(z, y), R.nce_np(z, y), rtol=1e-12)


def test_nleep_matches_sklearn_gaussian_mixture_with_same_init():
  f, y = TALL
  key = jax.random.key(7)
  idx = np.asarray(source_labels.nleep_init_indices(key, f.shape[0], 5 * 3))
  want = R.nleep_np(f, y, init_indices=idx)   # sklearn PCA(0.8) + diag GMM
  np.testing.assert_allclose(M.nleep(f, y, key), want, rtol=1e-6)


def test_knn_matches_sklearn():
  f, y = TALL
  for k in (1, 5):
    np.testing.assert_allclose(
        M.knn_accuracy(f[:50], y[:50], f[50:], y[50:], k=k),
        R.knn_accuracy_np(f[:50], y[:50], f[50:], y[50:], k=k))


def test_logme_float64_on_badly_scaled_features():
  f, y = TALL
  g = f * 1e3 + 5e3          # large offset and scale: float32 would lose digits
  np.testing.assert_allclose(M.logme(g, y), R.logme_np(g, y), rtol=1e-8)


def test_ledoit_wolf_shrinkage_equals_sklearn():
  import jax.numpy as jnp
  for f, _ in (TALL, WIDE):
    with jax.enable_x64(True):
      _, alpha = jax.jit(hscore.ledoit_wolf)(jnp.asarray(f))
    np.testing.assert_allclose(float(alpha), ledoit_wolf_shrinkage(f), rtol=1e-10)


# ----------------------------------------------------------------------------
# Closed forms and properties.
# ----------------------------------------------------------------------------


def test_leep_perfect_and_uninformative_source():
  y = np.arange(40) % 4
  assert M.leep(np.eye(4)[y], y) == pytest.approx(0.0, abs=1e-12)
  # Uniform theta: P(y | z) = P(y), so LEEP = sum_y P(y) log P(y) = -log 4.
  assert M.leep(np.full((40, 6), 1 / 6), y) == pytest.approx(-np.log(4), abs=1e-12)
  # A source that permutes the classes is still perfect (it is a relabelling).
  assert M.leep(np.eye(4)[(y + 1) % 4], y) == pytest.approx(0.0, abs=1e-12)


def test_nce_hand_computed():
  y = np.array([0, 0, 1, 1])
  z = np.array([0, 0, 0, 1])
  # P(z=0)=3/4 with P(y|z=0)=(2/3, 1/3); z=1 is pure. NCE = -H(Y|Z).
  want = 0.5 * np.log(2 / 3) + 0.25 * np.log(1 / 3)
  assert M.nce(z, y) == pytest.approx(want, abs=1e-12)
  assert M.nce(z, y) == pytest.approx(-0.75 * scipy.stats.entropy([2 / 3, 1 / 3]), abs=1e-12)
  assert M.nce(y, y) == pytest.approx(0.0, abs=1e-12)
  # Z independent of Y: -H(Y) = -log 2.
  assert M.nce(np.array([0, 1, 0, 1]), y) == pytest.approx(-np.log(2), abs=1e-12)


def test_gbc_range_and_extremes():
  c = 3
  far, y = _data(90, 12, c, 30.0, 4)           # well separated: overlap ~ 0
  same, _ = _data(90, 12, c, 0.0, 5)           # identical class distributions
  g_far, g_same = M.gbc(far, y), M.gbc(same, y)
  for g in (g_far, g_same, M.gbc(*TALL), M.gbc(*WIDE)):
    assert -c * (c - 1) <= g <= 0
  assert g_far > -1e-6
  assert g_same < -0.8 * c * (c - 1)


def test_gbc_equals_numeric_bhattacharyya_coefficient_in_1d():
  rng = np.random.default_rng(6)
  y = np.repeat([0, 1], 200)
  x = np.where(y == 0, rng.normal(0.0, 1.0, 400), rng.normal(1.5, 0.7, 400))[:, None]
  m = [x[y == k, 0].mean() for k in (0, 1)]
  s = [x[y == k, 0].std() for k in (0, 1)]          # ddof=0, as GBC
  bc, _ = scipy.integrate.quad(lambda t: np.sqrt(scipy.stats.norm.pdf(t, m[0], s[0])
                                                 * scipy.stats.norm.pdf(t, m[1], s[1])),
                               -20, 20)
  assert M.gbc(x, y) == pytest.approx(-2 * bc, rel=1e-7)


def test_h_score_near_zero_for_random_features_and_bounded():
  rng = np.random.default_rng(8)
  y = np.arange(2000) % 2
  f = rng.normal(size=(2000, 10))
  assert 0 <= M.h_score(f, y) < 0.05             # E ~ (C-1) d / n = 0.005
  h_inf = M.h_score(f + 3 * np.eye(2, 10)[y], y)
  assert 0.5 < h_inf <= 1 + 1e-9                  # at most C - 1
  assert 0 <= M.shrinkage_h_score(f, y) < 0.05


def test_h_score_invariant_to_invertible_linear_maps():
  f, y = TALL
  a = np.random.default_rng(9).normal(size=(12, 12)) + 3 * np.eye(12)
  assert M.h_score(f @ a, y) == pytest.approx(M.h_score(f, y), rel=1e-8)


def test_h_score_is_matrix_trace_not_google_elementwise():
  f, y = TALL
  cov_f = np.cov(f, rowvar=False)
  cov_g = np.cov(np.stack([f[y == k].mean(0) for k in y]), rowvar=False)
  elementwise = np.trace(np.linalg.pinv(cov_f) * cov_g)
  assert M.h_score(f, y) == pytest.approx(np.trace(np.linalg.pinv(cov_f) @ cov_g), rel=1e-9)
  assert abs(M.h_score(f, y) - elementwise) > 1e-3


@pytest.mark.parametrize("name", ["logme", "transrate", "h_score", "shrinkage_h_score",
                                  "sfda"])
def test_informative_features_score_higher_than_random(name):
  good, y = _data(90, 12, 3, 3.0, 10)     # TALL's shapes: reuses its compiles
  bad = np.random.default_rng(11).normal(size=good.shape)
  fn = getattr(M, name)
  assert fn(good, y) > fn(bad, y)


def test_nleep_properties():
  good, y = _data(90, 12, 3, 4.0, 12)
  bad = np.random.default_rng(13).normal(size=good.shape)
  key = jax.random.key(0)
  s_good = M.nleep(good, y, key)
  assert s_good == M.nleep(good, y, key)             # seeded: reproducible
  assert -np.log(3) - 0.5 < M.nleep(bad, y, key) < s_good <= 0


def test_transrate_invariant_to_feature_scale():
  f, y = TALL
  assert M.transrate(3.7 * f, y) == pytest.approx(M.transrate(f, y), rel=1e-10)


def test_sfda_in_unit_interval_and_input_untouched():
  f, y = TALL
  f0 = f.copy()
  s = M.sfda(f, y)
  assert 0 < s <= 1
  np.testing.assert_array_equal(f, f0)


def test_linear_probe_accuracy_and_auc():
  f, y = _data(120, 6, 2, 2.0, 14)
  tr, va = slice(0, 80), slice(80, None)
  sc = StandardScaler().fit(f[tr])
  clf = LogisticRegression(max_iter=1000).fit(sc.transform(f[tr]), y[tr])
  proba = clf.predict_proba(sc.transform(f[va]))[:, 1]
  assert M.linear_probe(f[tr], y[tr], f[va], y[va], metric="auc") == pytest.approx(
      roc_auc_score(y[va], proba))
  acc = M.linear_probe(f[tr], y[tr], f[va], y[va])
  assert acc == pytest.approx(np.mean((proba > 0.5) == y[va]))
  sep, ys = _data(60, 4, 2, 50.0, 15)
  assert M.linear_probe(sep[:40], ys[:40], sep[40:], ys[40:]) == 1.0


def test_loo_prior_hand_computed():
  table = np.array([[0.9, 0.6, 0.7],
                    [0.5, np.nan, 0.9],
                    [0.7, 0.8, np.nan]])
  np.testing.assert_allclose(M.loo_prior(table, 0), [0.6, 0.8, 0.9])
  np.testing.assert_allclose(M.loo_prior(table, 1), [0.8, 0.7, 0.7])
  np.testing.assert_allclose(M.loo_prior(table, -1), [0.7, 0.6, 0.8])
  one_left = np.array([[0.9, 0.6], [np.nan, 0.5]])
  out = M.loo_prior(one_left, 0)
  assert np.isnan(out[0]) and out[1] == 0.5


# ----------------------------------------------------------------------------
# jit / vmap of the public functions.
# ----------------------------------------------------------------------------


def test_public_functions_are_jittable_under_x64():
  import jax.numpy as jnp
  f, y = TALL
  with jax.enable_x64(True):
    got = jax.jit(lambda a: M.logme(a, jnp.asarray(y), num_classes=3))(jnp.asarray(f))
  assert float(got) == pytest.approx(M.logme(f, y), rel=1e-12)


def test_traced_call_without_num_classes_says_how_to_fix():
  f, y = TALL
  with pytest.raises(EstimatorError, match="pass num_classes"):
    jax.jit(lambda a, b: M.h_score(a, b))(f, y)


# ----------------------------------------------------------------------------
# Input validation (outside jit).
# ----------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
  f, y = TALL
  bad = f.copy()
  bad[3, 2] = np.nan
  with pytest.raises(EstimatorError, match="NaN/inf"):
    M.logme(bad, y)
  with pytest.raises(EstimatorError, match="n=90 rows but labels has 89"):
    M.transrate(f, y[:-1])
  with pytest.raises(EstimatorError, match="at least 2 target classes"):
    M.gbc(f, np.zeros(90, int))
  with pytest.raises(EstimatorError, match=r"classes \[1\] have no samples"):
    M.sfda(f, np.where(y == 1, 2, y))
  with pytest.raises(EstimatorError, match="must be \\[n, d\\]"):
    M.h_score(f[0], y)
  with pytest.raises(EstimatorError, match="Apply softmax"):
    M.leep(f[:, :3], y)
  with pytest.raises(EstimatorError, match="integer argmax"):
    M.nce(np.eye(3)[y], y)
  with pytest.raises(EstimatorError, match="need at least as many images"):
    M.nleep(f[:10], y[:10], jax.random.key(0))
  with pytest.raises(EstimatorError, match="gaussian_type"):
    M.gbc(f, y, gaussian_type="full")
  with pytest.raises(EstimatorError, match="labels must be integers"):
    M.logme(f, y + 0.5)
  with pytest.raises(EstimatorError, match=">= 0"):
    M.logme(f, y - 1)
  with pytest.raises(EstimatorError, match="k=100"):
    M.knn_accuracy(f[:50], y[:50], f[50:], y[50:], k=100)
  with pytest.raises(EstimatorError, match="auc_table"):
    M.loo_prior(np.ones(3), 0)
