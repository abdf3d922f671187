"""Tests of ``transferjax.selection``: several sources and layers to transfer.

The greedy selection is checked on synthetic features whose answer is known by
construction: source A is decisive on half of the rows, A2 is an exact copy of
A, B and C are each decisive on a different quarter, D1/D2 are noise. Top-k by
the single-source score takes both copies; greedy must take A, B, C.
"""
import jax
import numpy as np
import pytest
import testlib
from sklearn.metrics import roc_auc_score

from transferjax.data.container import Dataset
from transferjax.data.tasks import TargetSplit
from transferjax.errors import ConfigError, EstimatorError
from transferjax.scoring.methods import RankConfig, RankInputs, score_method
from transferjax.selection import layers as layers_lib
from transferjax.selection import multi_source as ms
from transferjax.selection import set_truth
from transferjax.transfer.finetune import (TRANSFERABLE_LAYERS, binary_auc,
                                           finetune_sources, transplant)
from transferjax.transfer.fit import FitConfig

A, A2, B, C, D1, D2 = range(6)


def _pool(n=400, d=4, seed=0):
  """y, t and features [6, n, d] with the regions described in the docstring."""
  rng = np.random.default_rng(seed)
  y = np.arange(n) % 2
  region = np.repeat([0, 0, 1, 2], n // 4)[rng.permutation(n)]
  sign = (2 * y - 1)[:, None]

  def decisive(r):
    f = rng.standard_normal((n, d))
    f[region == r] += 4.0 * sign[region == r]
    return f

  fa = decisive(0)
  feats = np.stack([fa, fa.copy(), decisive(1), decisive(2),
                    rng.standard_normal((n, d)), rng.standard_normal((n, d))])
  t = rng.standard_normal((n, 1))                       # T knows nothing
  return y, t, feats.astype(np.float32)


@pytest.fixture(scope="module")
def greedy4():
  y, t, f = _pool()
  return ms.greedy_select(y, f, t, k=4, key=jax.random.key(0), n_perm=10)


def test_topk_takes_both_copies_greedy_does_not(greedy4):
  y, t, f = _pool()
  single = greedy4.candidate_gains[0]
  assert sorted(ms.top_k(single, 2)) == [A, A2]
  assert set(ms.top_k(single, 3)) >= {A, A2}
  first3 = greedy4.selected[:3]
  assert first3[0] in (A, A2)
  assert sorted(first3[1:]) == [B, C]
  # The copy adds nothing once A is in: its gain at step 2 is ~0, B's is large.
  copy = A2 if first3[0] == A else A
  assert greedy4.candidate_gains[1][copy] < 0.05
  assert greedy4.candidate_gains[1][B] > 0.08


def test_stopping_rule_stops_after_the_informative_sources(greedy4):
  assert greedy4.num_significant == 3
  assert greedy4.gains[3] <= max(greedy4.null_quantiles[3], 0.0)
  assert np.all(greedy4.gains[:3] > greedy4.null_quantiles[:3])


def test_first_step_is_the_ranking_score():
  """With S empty the gain is exactly the ranking's cmi_knn (f_scale='rms')."""
  y, t, f = _pool(n=120, seed=1)
  inp = RankInputs(labels=y, t=t.astype(np.float32), features=f,
                   source_logits=np.zeros((6, 120, 2), np.float32),
                   source_num_classes=np.full(6, 2), folds=np.zeros(120, int),
                   source_metrics={})
  cfg = RankConfig(seed=3)
  want = score_method(inp, cfg)
  got = ms.greedy_select(y, f, t, k=1, key=jax.random.key(3), n_perm=0,
                         jitter=cfg.jitter)
  np.testing.assert_allclose(got.candidate_gains[0], want, rtol=1e-6, atol=1e-7)
  assert np.isnan(got.null_quantiles[0]) and got.num_significant == 1


def test_conditioning_block_is_on_one_scale():
  y, t, f = _pool(n=200)
  scaled = ms.scale_block(f)
  z = ms.conditioning_block(t, scaled, [A, B])
  assert z.shape == (200, 1 + 2 * f.shape[-1])
  # Mean squared distance over all pairs: 2 per block (z-scored columns / d),
  # and 2 for Z too (3 blocks of 2, divided by 3): one scale.
  d = lambda x: np.mean(np.sum((x[:, None] - x[None]) ** 2, -1))
  assert d(scaled[A]) == pytest.approx(2.0, rel=1e-4)
  assert d(z) == pytest.approx(2.0, rel=1e-4)


def test_bad_inputs_are_named():
  y, t, f = _pool(n=40)
  with pytest.raises(ConfigError, match="k must be in 1..6"):
    ms.greedy_select(y, f, t, k=7)
  with pytest.raises(EstimatorError, match=r"\[q, n, d\]"):
    ms.greedy_select(y, f[0], t, k=1)
  with pytest.raises(ConfigError, match="exhaustive-search limit"):
    ms.all_subsets(40, 5, limit=1000)


def test_compare_sets_regret_and_rank():
  subs = ms.all_subsets(4, 2)
  truth_tab = np.array([0.9, 0.5, 0.6, 0.7, 0.8, 0.55])
  idx = ms.subset_index(subs)
  res = ms.compare_sets(lambda s: truth_tab[idx[tuple(sorted(s))]], subs,
                        truth_tab, np.array([0.7, 0.6, 0.5, 0.4]),
                        {"a": [1, 0], "b": [2, 3]})
  assert res["oracle_set"] == [0, 1] and res["oracle"] == 0.9
  assert res["methods"]["a"]["regret"] == 0.0 and res["methods"]["a"]["rank_of_set"] == 1
  assert res["methods"]["b"]["regret"] == pytest.approx(0.35)
  assert res["methods"]["b"]["rank_of_set"] == 5   # 0.9, 0.8, 0.7, 0.6 above it
  assert res["best_single"] == 0.7


def test_auc_rows_and_ensembles_match_sklearn():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 50)
  logits = rng.standard_normal((3, 2, 50, 2)).astype(np.float32)
  logits[..., 1] += labels * np.array([1.0, 0.2, 0.0])[:, None, None]
  subs = ms.all_subsets(3, 1)
  got = set_truth.ensemble_auc(logits, labels, subs)
  for i in range(3):
    for s in range(2):
      assert got[i, s] == pytest.approx(binary_auc(labels, logits[i, s]), abs=1e-12)
  pair = set_truth.ensemble_auc(logits, labels, np.array([[0, 2]]))
  margin = (logits[[0, 2], 0, :, 1] - logits[[0, 2], 0, :, 0]).mean(0)
  assert pair[0, 0] == pytest.approx(roc_auc_score(labels, margin), abs=1e-12)
  with pytest.raises(ConfigError, match="binary"):
    set_truth.auc_rows(np.full(5, 1), np.zeros(5))


def test_concat_head_learns_from_the_informative_block():
  """A fresh linear head: AUC ~1 on the informative source, ~0.5 on noise, and
  a model computed inside a batch equals the same model alone."""
  rng = np.random.default_rng(0)
  n = 160
  labels = np.arange(n) % 2
  good = rng.standard_normal((n, 6)) + 2.0 * labels[:, None]
  noise = rng.standard_normal((n, 6))
  feats = np.stack([good, noise]).astype(np.float32)
  subs = np.array([[0], [1]])
  auc = set_truth.concat_head_auc(feats, labels, 60, 20, subs, num_seeds=2,
                                  key=jax.random.key(0), steps=60, chunk=4)
  assert auc.shape == (2, 2)
  assert auc[0].min() > 0.95 and abs(auc[1].mean() - 0.5) < 0.15
  alone = set_truth.concat_head_auc(feats, labels, 60, 20, subs[1:], num_seeds=1,
                                    key=jax.random.key(0), steps=60, chunk=4)
  # Model (subset r, seed s) keys on its row r of the given subsets: row 0 here.
  again = set_truth.concat_head_auc(feats, labels, 60, 20, subs[::-1], num_seeds=1,
                                    key=jax.random.key(0), steps=60, chunk=4)
  assert alone[0, 0] == pytest.approx(again[0, 0], abs=1e-6)


def test_transplant_first_l_layers():
  src = testlib.random_params(2, 4, seed=1)
  fresh = testlib.random_params(2, 2, seed=2)
  for l in (1, 2, 3):
    out = transplant(src, fresh, l)
    for name in ("conv1", "conv2", "fc", "head"):
      want = src if name in TRANSFERABLE_LAYERS[:l] else fresh
      np.testing.assert_array_equal(np.asarray(out[name]["kernel"]),
                                    want[name]["kernel"])
  default = transplant(src, fresh)
  two = transplant(src, fresh, 2)
  for name in default:
    np.testing.assert_array_equal(np.asarray(default[name]["kernel"]),
                                  np.asarray(two[name]["kernel"]))
  with pytest.raises(ConfigError, match="num_transferred"):
    transplant(src, fresh, 4)


def test_depth_features_shapes_and_fc_matches_the_model():
  from transferjax.models import make_cnn
  params = testlib.random_params(3, 4, seed=3)
  images = np.random.default_rng(0).random((5, 20, 20, 1)).astype(np.float32)
  out = layers_lib.depth_features(params, "lenet20", images, grid=2, model_chunk=2)
  assert out["conv1"].shape == (3, 5, 2 * 2 * 32)
  assert out["conv2"].shape == (3, 5, 2 * 2 * 64)
  assert out["fc"].shape == (3, 5, 200)
  model = make_cnn("lenet20", 4, "im2col")
  p1 = jax.tree.map(lambda a: a[1], params)
  _, fc = model.apply({"params": p1}, images)
  np.testing.assert_allclose(out["fc"][1], np.asarray(fc), rtol=1e-5, atol=1e-5)
  assert np.all(out["conv1"] >= 0) and np.all(out["conv2"] >= 0)   # after ReLU


def _dataset(n, seed):
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 2
  images = rng.random((n, 20, 20, 1)).astype(np.float32) * 0.8
  images[labels == 1, 6:14, 6:14, 0] += 0.15
  return Dataset(np.clip(images, 0, 1), labels, ("neg", "pos"), "syn")


def test_finetune_records_test_logits_per_depth():
  """``num_transferred`` reaches the fit, and the returned test logits give the
  recorded AUC (the ensembles are built from them)."""
  split = TargetSplit(_dataset(16, 1), _dataset(6, 2), _dataset(20, 3), seed=0)
  out = finetune_sources(testlib.random_params(2, 4, seed=5), split, num_seeds=1,
                         cfg=FitConfig(batch_size=8, max_epochs=1, patience=1,
                                       budgets=()),
                         root_key=jax.random.key(0), num_transferred=3)
  assert out.test_logits.shape == (2, 1, 20, 2)
  for i in range(2):
    assert out.auc[i, 0] == pytest.approx(
        binary_auc(split.test.labels, out.test_logits[i, 0]), abs=1e-12)


@pytest.mark.parametrize("module", ["experiments.select", "experiments.layers"])
def test_entry_point_bad_zoo_is_one_clear_line(module, tmp_path):
  import os
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, "-m", module, "--zoo=/nonexistent/zoo",
                        f"--cache={tmp_path}", f"--out={tmp_path}"], cwd=root,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"),
                       capture_output=True, text=True, timeout=240)
  assert out.returncode == 2, out.stderr[-2000:]
  assert "No zoo at '/nonexistent/zoo'" in out.stderr
  assert "Traceback" not in out.stderr
