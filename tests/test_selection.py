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


# --- Multi-class targets (top-1 accuracy ground truth) and reading a study ----


def test_multiclass_scores_match_gt_metrics_and_ensemble_is_argmax_of_mean():
  from transferjax.transfer import gt_metrics
  rng = np.random.default_rng(1)
  labels = np.arange(30) % 3
  logits = rng.standard_normal((3, 2, 30, 4)).astype(np.float32)  # 4th slot unused
  logits[..., 3] = 50.0    # an unused head slot must never win
  single = set_truth.ensemble_score(logits, labels, ms.all_subsets(3, 1),
                                    metric="accuracy", num_classes=3)
  bal = set_truth.ensemble_score(logits, labels, ms.all_subsets(3, 1),
                                 metric="balanced_accuracy", num_classes=3)
  for i in range(3):
    for s in range(2):
      assert single[i, s] == pytest.approx(gt_metrics.score_logits(
          labels, logits[i, s], "accuracy", 3), abs=1e-12)
      assert bal[i, s] == pytest.approx(gt_metrics.score_logits(
          labels, logits[i, s], "balanced_accuracy", 3), abs=1e-12)
  # Two members, each confidently wrong on a different half; mildly right
  # elsewhere: each scores 0.5, the logit average is right everywhere.
  lg = np.zeros((2, 1, 30, 3), np.float32)
  lg[:, 0, np.arange(30), labels] = 1.0
  wrong = (labels + 1) % 3
  lg[0, 0, np.arange(15), wrong[:15]] = 1.5
  lg[1, 0, np.arange(15, 30), wrong[15:]] = 1.5
  acc = set_truth.ensemble_score(lg, labels, ms.all_subsets(2, 1), metric="accuracy",
                                 num_classes=3)
  assert acc[:, 0].tolist() == [0.5, 0.5]
  pair = set_truth.ensemble_score(lg, labels, np.array([[0, 1]]), metric="accuracy",
                                  num_classes=3)
  assert pair[0, 0] == 1.0
  with pytest.raises(ConfigError, match="metric"):
    set_truth.score_rows(labels, lg[0, 0], "f1", 3)


def test_concat_head_multiclass_softmax_learns():
  """A softmax head over 4 classes: near-perfect accuracy on a block that
  separates the classes, chance on noise."""
  rng = np.random.default_rng(0)
  n = 240
  labels = np.arange(n) % 4
  centers = 3.0 * np.eye(4, 6)
  good = rng.standard_normal((n, 6)) + centers[labels]
  noise = rng.standard_normal((n, 6))
  feats = np.stack([good, noise]).astype(np.float32)
  kw = dict(num_seeds=1, key=jax.random.key(0), steps=80, metric="accuracy",
            num_classes=4, chunk=4)
  acc = set_truth.concat_head_score(feats, labels, 80, 40, np.array([[0], [1]]), **kw)
  both = set_truth.concat_head_score(feats, labels, 80, 40, np.array([[0, 1]]), **kw)
  assert acc.shape == (2, 1)
  assert acc[0, 0] > 0.9 and both[0, 0] > 0.85
  assert abs(acc[1, 0] - 0.25) < 0.15


def _dataset3(n, seed):
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 3
  images = rng.random((n, 20, 20, 1)).astype(np.float32) * 0.8
  for c in (1, 2):
    images[labels == c, 4 * c:4 * c + 6, 4 * c:4 * c + 6, 0] += 0.2
  return Dataset(np.clip(images, 0, 1), labels, ("a", "b", "c"), "syn3")


def test_multiclass_finetune_accuracy_equals_ensemble_of_one():
  """The fine-tuning's accuracy and the set truth of a one-source 'ensemble'
  are the same number (both argmax over the target's classes)."""
  split = TargetSplit(_dataset3(18, 1), _dataset3(6, 2), _dataset3(24, 3), seed=0)
  out = finetune_sources(testlib.random_params(2, 4, seed=5), split, num_seeds=1,
                         cfg=FitConfig(batch_size=8, max_epochs=1, patience=1,
                                       budgets=(), max_classes=3),
                         root_key=jax.random.key(0))
  assert out.metric == "accuracy"
  got = set_truth.ensemble_score(out.test_logits, split.test.labels,
                                 ms.all_subsets(2, 1), metric="accuracy", num_classes=3)
  np.testing.assert_allclose(got, out.auc, atol=1e-12)


def _fake_study(tmp_path, q, seeds, n_test, c, **sig):
  """A study folder as ``study.run_study`` leaves it for split 0."""
  from transferjax import io as tio
  folder = tmp_path / "study" / "transfer" / "split_0_chunks"
  rng = np.random.default_rng(0)
  pairs = [(i, s) for s in range(seeds) for i in range(q + 1)]
  score = rng.random(len(pairs))
  logits = rng.standard_normal((len(pairs), n_test, c)).astype(np.float32)
  tio.write_json(str(folder / "signature.json"), {"signature": sig})
  tio.write_json(str(folder / "chunk_000000.json"),
                 {"pairs": pairs, "auc": score.tolist(), "epochs": [1] * len(pairs)})
  tio.save_npz(str(folder / "chunk_000000_logits.npz"), test_logits=logits)
  return str(tmp_path / "study"), pairs, score, logits


def test_reuse_finetune_reads_a_study_and_refuses_other_settings(tmp_path):
  import dataclasses
  import os
  import types
  from transferjax.errors import CheckpointError
  from transferjax.selection import engine
  q, n_test = 2, 12
  fit = FitConfig(max_epochs=30, patience=5, budgets=())
  fit_sig = dataclasses.asdict(dataclasses.replace(fit, arch="lenet20", max_classes=2))
  fit_sig["budgets"] = []
  study, pairs, score, logits = _fake_study(
      tmp_path, q, 3, n_test, 3, zoo=os.path.abspath("zoo_x"), target="mnist:5,6,7",
      fraction=0.05, num_labeled=None, shots_per_class=8, max_test_per_class=200,
      seed=0, num_seeds=3, finetune=fit_sig)
  cfg = engine.SettingConfig(zoo="zoo_x", target="mnist:5,6,7", fraction=0.05,
                             shots_per_class=8, max_test_per_class=200, num_seeds=2,
                             finetune=fit, reuse_finetune=study)
  st = engine.Setting(cfg, types.SimpleNamespace(num_models=q),
                      types.SimpleNamespace(num_classes=3))
  split = types.SimpleNamespace(test=_dataset3(n_test, 0), train=_dataset3(6, 1))
  got = engine._study_finetune(st, 0, split)
  idx = {p: j for j, p in enumerate(pairs)}
  for i in range(q):
    for s in range(2):    # the first num_seeds of the study's 3
      assert got["auc"][i, s] == score[idx[(i, s)]]
      np.testing.assert_array_equal(got["test_logits"][i, s], logits[idx[(i, s)]])
  assert got["no_transfer"].tolist() == [score[idx[(q, 0)]], score[idx[(q, 1)]]]
  assert engine._study_finetune(st, 1, split) is None       # split not run yet
  bad = dataclasses.replace(cfg, shots_per_class=6, num_seeds=4)
  with pytest.raises(CheckpointError, match="shots_per_class, num_seeds"):
    engine._study_finetune(engine.Setting(bad, st.zoo, st.target), 0, split)


def test_fewer_seeds_are_read_from_a_cached_run_with_more(tmp_path):
  """A 2-seed stage is the first 2 seeds of a cached 3-seed run with the same
  settings; a cached run with other settings is not used."""
  import dataclasses
  import types
  from transferjax import io as tio
  from transferjax.selection import engine
  ds = _dataset3(9, 0)
  target = types.SimpleNamespace(images=ds.images, labels=ds.labels, num_classes=3)
  zoo = types.SimpleNamespace(num_models=2, tasks=[types.SimpleNamespace(task_id=i)
                                                   for i in range(2)])
  cfg3 = engine.SettingConfig(zoo="zoo_x", target="syn3", cache=str(tmp_path),
                              num_seeds=3)
  st3 = engine.Setting(cfg3, zoo, target)
  rng = np.random.default_rng(0)
  arrays = {"auc": rng.random((2, 3)), "no_transfer": rng.random(3),
            "test_logits": rng.random((2, 3, 5, 3)), "test_labels": np.arange(5) % 3}
  sig3 = engine._signature(st3, stage="finetune", split=0, layers=1, num_seeds=3,
                           finetune=dataclasses.asdict(cfg3.finetune))
  import json
  tio.save_npz(str(tmp_path / "finetune_l1_seeds3_split0.npz"),
               signature=np.array(json.dumps(sig3)), **arrays)
  st2 = engine.Setting(dataclasses.replace(cfg3, num_seeds=2), zoo, target)
  got = engine.finetune_stage(st2, 0, 1)
  np.testing.assert_array_equal(got["auc"], arrays["auc"][:, :2])
  np.testing.assert_array_equal(got["test_logits"], arrays["test_logits"][:, :2])
  assert (tmp_path / "finetune_l1_seeds2_split0.npz").exists()
  other = engine.Setting(dataclasses.replace(cfg3, num_seeds=2, seed=1), zoo, target)
  sig = engine._signature(other, stage="finetune", split=0, layers=1, num_seeds=2,
                          finetune=dataclasses.asdict(cfg3.finetune))
  assert engine._more_seeds(other, 0, 1, sig) is None
