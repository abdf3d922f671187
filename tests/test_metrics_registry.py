"""score_sources: vmapped/lax.mapped scoring of a source stack equals a loop."""
import jax
import numpy as np
import pytest

from transferjax import metrics as M
from transferjax.errors import ConfigError, EstimatorError
from transferjax.metrics.registry import INPUT_KINDS

Q, N, D, C = 5, 40, 6, 2


def _stack(seed=0):
  rng = np.random.default_rng(seed)
  y = np.arange(N) % C
  seps = np.linspace(0.0, 3.0, Q)[:, None, None]
  feats = rng.normal(size=(Q, N, D)) + seps * np.eye(C, D)[y][None]
  return feats.astype(np.float32), y


def test_registry_entries_are_well_formed():
  assert {"leep", "nce", "h_score", "shrinkage_h_score", "logme", "nleep", "gbc",
          "transrate", "sfda", "pactran_gauss", "knn_accuracy", "linear_probe"} <= set(M.METRICS)
  for name, spec in M.METRICS.items():
    assert spec.name == name and spec.input in INPUT_KINDS
    assert spec.jittable == (spec.core is not None)


@pytest.mark.parametrize("name", ["h_score", "shrinkage_h_score", "logme", "gbc",
                                  "transrate", "sfda", "pactran_gauss"])
def test_feature_metric_stack_equals_loop(name):
  feats, y = _stack()
  got = M.score_sources(name, feats, y)
  want = [getattr(M, name)(feats[i], y) for i in range(Q)]
  assert got.shape == (Q,) and got.dtype == np.float64
  np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_batch_size_remainder_path_equals_loop():
  feats, y = _stack()
  # batch_size=2 does not divide q=5: lax.map's scan plus its remainder vmap.
  np.testing.assert_allclose(M.score_sources("h_score", feats, y, batch_size=2),
                             [M.h_score(x, y) for x in feats], rtol=1e-9)


def test_nleep_stack_uses_fold_in_keys():
  feats, y = _stack(1)
  key = jax.random.key(3)
  got = M.score_sources("nleep", feats, y, key=key, components_per_class=2)
  want = [M.nleep(feats[i], y, jax.random.fold_in(key, i), components_per_class=2)
          for i in range(Q)]
  np.testing.assert_allclose(got, want, rtol=1e-9)
  with pytest.raises(EstimatorError, match="needs a PRNG key"):
    M.score_sources("nleep", feats, y)


def test_leep_and_nce_stacks_equal_loop():
  rng = np.random.default_rng(2)
  y = np.arange(N) % C
  probs = rng.dirichlet(np.ones(4), size=(Q, N))
  preds = rng.integers(0, 4, size=(Q, N))
  np.testing.assert_allclose(M.score_sources("leep", probs, y),
                             [M.leep(p, y) for p in probs], rtol=1e-12)
  # Source-class count is padded to the stack's max; NCE does not change.
  np.testing.assert_allclose(M.score_sources("nce", preds, y),
                             [M.nce(p, y) for p in preds], rtol=1e-12)


def test_train_val_baselines_equal_loop():
  feats, y = _stack(4)
  tr, va = feats[:, :24], feats[:, 24:]
  ytr, yva = y[:24], y[24:]
  got = M.score_sources("knn_accuracy", (tr, va), (ytr, yva), k=3)
  np.testing.assert_allclose(got, [M.knn_accuracy(tr[i], ytr, va[i], yva, k=3)
                                   for i in range(Q)])
  got = M.score_sources("linear_probe", (tr, va), (ytr, yva))
  np.testing.assert_allclose(got, [M.linear_probe(tr[i], ytr, va[i], yva)
                                   for i in range(Q)])
  with pytest.raises(EstimatorError, match="pass inputs=\\(train_features"):
    M.score_sources("knn_accuracy", tr, ytr)


def test_more_separated_sources_rank_higher():
  feats, y = _stack(5)
  for name in ("logme", "h_score", "gbc", "transrate"):
    s = M.score_sources(name, feats, y)
    assert s[-1] > s[0], name


def test_score_sources_errors():
  feats, y = _stack()
  with pytest.raises(ConfigError, match="unknown metric 'logmee'"):
    M.score_sources("logmee", feats, y)
  with pytest.raises(ConfigError, match="unknown options \\['gaussian'\\]"):
    M.score_sources("gbc", feats, y, gaussian="spherical")
  with pytest.raises(EstimatorError, match=r"must be \[q, n, d\]"):
    M.score_sources("logme", feats[0], y)
  bad = feats.copy()
  bad[2, 0, 0] = np.inf
  with pytest.raises(EstimatorError, match="NaN/inf"):
    M.score_sources("gbc", bad, y)
  with pytest.raises(EstimatorError, match="labels has 39"):
    M.score_sources("sfda", feats, y[:-1])
