"""Tests of ``transferjax.scoring``: the scoring set, every method, ranking, job.

No CNN is trained here: ``build_scoring_set``'s trainer is replaced by a spy
whose logits encode which fold net scored each row (the real training path runs
in tests/test_study.py), ranking inputs are random arrays, and the zoo is a
``Zoo`` of random NumPy parameters.
"""
import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import testlib
import scipy.special
import scipy.stats

from transferjax import estimators as est
from transferjax.data.container import Dataset
from transferjax.data.tasks import SourceTask, TargetSplit
from transferjax.errors import CheckpointError, ConfigError, EstimatorError
from transferjax.models import make_cnn
from transferjax.scoring import job as job_lib
from transferjax.scoring import rank as rank_lib
from transferjax.scoring import target as target_lib
from transferjax.scoring.methods import (METHODS, RankConfig, RankInputs,
                                         score_method, source_probs)
from transferjax.scoring.target import ScoringSet, build_scoring_set, logits_to_t
from transferjax.train.zoo import Zoo
from transferjax.transfer.fit import FitConfig, FitResult

FIT = FitConfig(batch_size=8, max_epochs=2, patience=1, budgets=(1,))


# ----------------------------------------------------------------------------
# Helpers.
# ----------------------------------------------------------------------------


def _dataset(n, seed, size=20, num_classes=2, name="syn"):
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % num_classes
  images = rng.random((n, size, size, 1)).astype(np.float32)
  return Dataset(images, labels, tuple(f"c{i}" for i in range(num_classes)), name)


def _split(n_t=17, n_v=7, n_e=10, size=20):
  return TargetSplit(_dataset(n_t, 1, size), _dataset(n_v, 2, size),
                     _dataset(n_e, 3, size), seed=4)


_random_params = testlib.random_params


def _fake_zoo(q=3, image_size=20, params=None):
  tasks = [SourceTask(100 + i, "syn", tuple(range(2 + i)), np.arange(5 + i),
                      np.arange(2)) for i in range(q)]
  metrics = {"train_accuracy": np.linspace(0.6, 0.9, q),
             "holdout_accuracy": np.linspace(0.5, 0.8, q)}
  return Zoo(params if params is not None else _random_params(q, 4, 0), tasks,
             "lenet20", image_size, 4, metrics, {"conv_impl": "im2col"})


def _rank_inputs(n=60, q=3, d=24, seed=0, labels=None, relu=True):
  """Random zoo outputs; ``relu`` gives features exact zeros (ties), as real
  penultimate ReLU features have."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 2 if labels is None else np.asarray(labels)
  signal = np.array([0.0, 1.0, 2.0])[:q, None, None] * (labels[None, :, None] - 0.5)
  features = rng.standard_normal((q, n, d)) + signal
  logits = rng.standard_normal((q, n, 4))
  logits[:, :, 0] += 2 * labels  # Source class 0 predicts target class 1.
  t = (labels[:, None] + 0.8 * rng.standard_normal((n, 1)))
  return RankInputs(labels=labels, t=t.astype(np.float32),
                    features=(np.maximum(features, 0) if relu else features
                             ).astype(np.float32),
                    source_logits=logits.astype(np.float32),
                    source_num_classes=np.array([2, 3, 4][:q]),
                    folds=np.arange(n) % 3,
                    source_metrics={"train_accuracy": np.array([0.9, 0.8, 0.7])[:q],
                                    "holdout_accuracy": np.array([0.7, 0.8, 0.9])[:q],
                                    "num_train_images": np.array([40, 120, 80])[:q]},
                    target_images=rng.random((n, 4, 4, 1)).astype(np.float32),
                    source_pool_models=_rbm_stack(rng, q))


def _rbm_stack(rng, q, v=16, h=4):
  """``q`` random RBMs over ``v`` pixels (``baselines.rbm`` layout)."""
  return {"w": (0.1 * rng.standard_normal((q, v, h))).astype(np.float32),
          "b_vis": np.zeros((q, v), np.float32), "b_hid": np.zeros((q, h), np.float32),
          "mean": np.full((q, v), 0.5, np.float32), "std": np.ones((q,), np.float32)}


# ----------------------------------------------------------------------------
# target.py
# ----------------------------------------------------------------------------


def test_logits_to_t_binary_margin():
  logits = np.array([[0.5, 2.0, 9.0], [3.0, -1.0, 9.0]])  # Column 2: padding.
  np.testing.assert_allclose(logits_to_t(logits, 2), [[1.5], [-4.0]])
  assert logits_to_t(logits, 2).shape == (2, 1)


def test_logits_to_t_multiclass_centred():
  rng = np.random.default_rng(0)
  logits = rng.standard_normal((5, 4)) * 3
  t = logits_to_t(logits, 3)  # Head padded to 4; the last column is ignored.
  assert t.shape == (5, 3)
  np.testing.assert_allclose(t.sum(axis=1), 0, atol=1e-5)
  np.testing.assert_allclose(scipy.special.softmax(t, axis=1),
                             scipy.special.softmax(logits[:, :3], axis=1), rtol=1e-5)


def test_build_scoring_set_config_errors():
  with pytest.raises(ConfigError, match="folds >= 3"):
    build_scoring_set(_split(), protocol="crossfit", folds=2, cfg=FIT,
                      key=jax.random.key(0))
  with pytest.raises(ConfigError, match="Unknown protocol 'loo'"):
    build_scoring_set(_split(), protocol="loo", cfg=FIT, key=jax.random.key(0))


@pytest.fixture
def spy_fit(monkeypatch):
  """Replaces the trainer: eval logit margin of model m on row r = 1000 (m+1) + r."""
  calls = []

  def fake_fit(init, images, labels, train_idx, train_len, val_idx, val_len,
               num_classes, keys, cfg, eval_images=None, names=None):
    m, n = len(train_len), eval_images.shape[0]
    margin = 1000.0 * (np.arange(m)[:, None] + 1) + np.arange(n)[None, :]
    logits = np.stack([np.zeros((m, n)), margin], axis=-1)
    calls.append(dict(images=np.asarray(images), labels=np.asarray(labels),
                      train=[np.asarray(train_idx[i][:train_len[i]]) for i in range(m)],
                      val=[np.asarray(val_idx[i][:val_len[i]]) for i in range(m)],
                      cfg=cfg, eval_images=np.asarray(eval_images), names=names))
    return FitResult(params=None, best_epoch=np.ones(m), epochs_run=np.ones(m),
                     best_val_loss=np.zeros(m), eval_logits=logits, budget_logits={})

  monkeypatch.setattr(target_lib, "fit_models", fake_fit)
  monkeypatch.setattr(target_lib, "init_params_stack", lambda *a, **k: None)
  return calls


@pytest.mark.parametrize("folds", [3, 5])
def test_crossfit_scores_every_row_out_of_fold(spy_fit, folds):
  split = _split()
  n = 24
  scoring = build_scoring_set(split, protocol="crossfit", folds=folds, cfg=FIT,
                              key=jax.random.key(0))
  (call,) = spy_fit
  assert call["cfg"].budgets == () and len(call["train"]) == folds
  # The scoring set is D_a = D_t + D_v, in that order, scored on the same rows.
  np.testing.assert_array_equal(scoring.images, split.labeled.images)
  np.testing.assert_array_equal(scoring.labels, split.labeled.labels)
  np.testing.assert_array_equal(call["eval_images"], scoring.images)
  np.testing.assert_array_equal(scoring.train_labels, scoring.labels)
  assert scoring.protocol == "crossfit" and scoring.t.shape == (n, 1)
  # Each row's T decodes to exactly one fold net, which never saw that row.
  rows = np.arange(n)
  owner = (scoring.t[:, 0] - rows) / 1000.0 - 1
  np.testing.assert_allclose(owner, np.round(owner), atol=1e-3)
  owner = np.round(owner).astype(int)
  assert sorted(set(owner)) == list(range(folds))
  for r, m in enumerate(owner):
    assert r not in call["train"][m] and r not in call["val"][m]
  for m in range(folds):
    scored = np.flatnonzero(owner == m)
    # Fold m's scored, early-stopping and training rows partition D_a.
    np.testing.assert_array_equal(
        np.sort(np.concatenate([scored, call["val"][m], call["train"][m]])), rows)
    np.testing.assert_array_equal(scoring.folds[scored], m)
    # Stratified: both classes in every scored fold.
    assert set(scoring.labels[scored]) == {0, 1}


def test_crossfit_averages_target_seeds(spy_fit):
  scoring = build_scoring_set(_split(), protocol="crossfit", folds=3, cfg=FIT,
                              key=jax.random.key(0), num_target_seeds=2)
  (call,) = spy_fit
  assert len(call["train"]) == 6
  rows = np.arange(24)
  fold = scoring.folds
  # Rows of fold j are scored by nets j and j + 3 (seed 2): the mean margin.
  want = (1000.0 * (fold + 1) + rows + 1000.0 * (fold + 4) + rows) / 2
  np.testing.assert_allclose(scoring.t[:, 0], want, rtol=1e-6)


def test_paper_protocol_scores_d_v_only(spy_fit):
  split = _split()
  scoring = build_scoring_set(split, protocol="paper", cfg=FIT, key=jax.random.key(0))
  (call,) = spy_fit
  assert len(call["train"]) == 1
  np.testing.assert_array_equal(call["train"][0], np.arange(17))
  np.testing.assert_array_equal(call["val"][0], np.arange(17, 24))
  np.testing.assert_array_equal(scoring.images, split.val.images)
  np.testing.assert_array_equal(scoring.labels, split.val.labels)
  np.testing.assert_array_equal(scoring.train_images, split.train.images)
  np.testing.assert_array_equal(scoring.folds, np.zeros(7))
  np.testing.assert_allclose(scoring.t[:, 0], 1000.0 + np.arange(17, 24))


# ----------------------------------------------------------------------------
# methods.py
# ----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:.*joint cells")  # cmi_binned on n=60.
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_gives_finite_scores(method):
  scores = score_method(_rank_inputs(), RankConfig(method=method))
  assert scores.shape == (3,) and scores.dtype == np.float64
  assert np.all(np.isfinite(scores)), scores


def test_trivial_methods_return_their_inputs():
  inp = _rank_inputs()
  np.testing.assert_array_equal(
      score_method(inp, RankConfig(method="source_n_classes")), [2, 3, 4])
  np.testing.assert_array_equal(
      score_method(inp, RankConfig(method="source_holdout_acc")), [0.7, 0.8, 0.9])


def test_cmi_knn_ranks_the_informative_source_first():
  # Sources 0, 1, 2 carry no, some and much label signal beyond T.
  scores = score_method(_rank_inputs(), RankConfig(method="cmi_knn"))
  assert np.argmax(scores) == 2 and np.argmin(scores) == 0


@pytest.mark.parametrize(
    "method", sorted(m for m in METHODS if m.startswith(("cmi_knn", "mi_knn"))))
def test_small_class_is_an_error_naming_k(method):
  labels = np.r_[np.zeros(57), np.ones(3)].astype(int)
  with pytest.raises(EstimatorError, match=r"(?i)class\(es\) \[1\].*fewer than k\+1=4"):
    score_method(_rank_inputs(labels=labels), RankConfig(method=method, k=3))
  # k = 2 needs 3 points per class: accepted.
  assert np.all(np.isfinite(score_method(_rank_inputs(labels=labels),
                                         RankConfig(method="mi_knn", k=2))))


def test_f_scale_matters_only_with_t():
  # Tie-free features: with ReLU zeros the 1e-6 jitter breaks ties, and how it
  # does depends on the scale of F (docs/notes/pipeline_tests.md).
  inp = _rank_inputs(relu=False)
  rms = score_method(inp, RankConfig(method="cmi_knn", f_scale="rms"))
  plain = score_method(inp, RankConfig(method="cmi_knn", f_scale="none"))
  assert not np.allclose(rms, plain, atol=1e-3)
  # Without T, scaling all of F by one factor keeps every neighbour: same MI.
  rms = score_method(inp, RankConfig(method="mi_knn", f_scale="rms"))
  plain = score_method(inp, RankConfig(method="mi_knn", f_scale="none"))
  np.testing.assert_allclose(rms, plain, atol=1e-5)
  with pytest.raises(ConfigError, match="f_scale"):
    score_method(inp, RankConfig(method="cmi_knn", f_scale="l2"))
  # With exact ties and no jitter the two agree as well.
  ties = _rank_inputs()
  np.testing.assert_allclose(
      score_method(ties, RankConfig(method="mi_knn", f_scale="rms", jitter=0.0)),
      score_method(ties, RankConfig(method="mi_knn", f_scale="none", jitter=0.0)),
      atol=1e-5)


def test_method_errors():
  inp = _rank_inputs()
  with pytest.raises(ConfigError, match="Unknown ranking method 'nope'"):
    score_method(inp, RankConfig(method="nope"))
  no_metrics = dataclasses.replace(inp, source_metrics={})
  with pytest.raises(ConfigError, match="'train_accuracy'"):
    score_method(no_metrics, RankConfig(method="source_train_acc"))
  one_fold = dataclasses.replace(inp, folds=np.zeros(60, int))
  with pytest.raises(EstimatorError, match="cross-fitting"):
    score_method(one_fold, RankConfig(method="linear_probe"))


def test_source_probs_mask_padded_classes():
  inp = _rank_inputs()
  p = source_probs(inp)
  assert p.shape == (3, 60, 4)
  np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
  assert np.all(p[0, :, 2:] == 0) and np.all(p[1, :, 3:] == 0)
  np.testing.assert_allclose(
      p[1, :, :3], scipy.special.softmax(inp.source_logits[1, :, :3], axis=-1),
      rtol=1e-5)


# ----------------------------------------------------------------------------
# rank.py
# ----------------------------------------------------------------------------


def test_check_sizes_names_both_sizes():
  with pytest.raises(ConfigError, match=r"20x20.*9x9"):
    rank_lib.check_sizes(_fake_zoo(), _split(size=9))
  rank_lib.check_sizes(_fake_zoo(), _split())  # Same size: no error.


def _scoring(n=12):
  ds = _dataset(n, 5)
  return ScoringSet(ds.images, ds.labels, np.zeros((n, 1), np.float32), ds.images,
                    ds.labels, np.arange(n) % 3, "crossfit")


def test_zoo_inputs_runs_every_source():
  zoo = _fake_zoo()
  scoring = _scoring()
  inp = rank_lib.zoo_inputs(zoo, scoring)
  assert inp.features.shape == (3, 12, 200)
  assert inp.source_logits.shape == (3, 12, 4)
  np.testing.assert_array_equal(inp.source_num_classes, [2, 3, 4])
  np.testing.assert_array_equal(inp.folds, scoring.folds)
  # Source 1 has 3 classes: its padded column is masked.
  assert np.all(inp.source_logits[1, :, 3] < -1e30)
  # An independent path: flax apply of source 2 alone.
  logits, feats = make_cnn("lenet20", 4).apply(
      {"params": zoo.model_params(2)}, scoring.images)
  np.testing.assert_allclose(inp.features[2], feats, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(inp.source_logits[2], logits, rtol=1e-4, atol=1e-5)


def test_zoo_inputs_nan_params_is_an_error():
  params = _random_params(3, 4, 0)
  # A NaN weight need not reach the features (XLA:CPU's fused dense+ReLU gave a
  # finite feature here), so the parameters themselves are checked.
  params["fc"]["kernel"][1, 0, 0] = np.nan
  with pytest.raises(EstimatorError, match=r"Source\(s\) \[1\]"):
    rank_lib.zoo_inputs(_fake_zoo(params=params), _scoring())


def test_zoo_inputs_nan_features_is_an_error(monkeypatch):
  real = rank_lib.zoo_lib.zoo_outputs

  def nan_features(zoo, **kwargs):
    logits, feats = real(zoo, **kwargs)
    feats = np.array(feats)
    feats[2, 3, 7] = np.inf
    return logits, feats

  monkeypatch.setattr(rank_lib.zoo_lib, "zoo_outputs", nan_features)
  with pytest.raises(EstimatorError, match=r"Source\(s\) \[2\]"):
    rank_lib.zoo_inputs(_fake_zoo(), _scoring())


def test_ranking_rows_and_files(tmp_path):
  zoo = _fake_zoo()
  scores = np.array([0.2, 0.5, 0.1])
  rows = rank_lib.ranking_rows(zoo, scores, 0.6)
  assert [r["rank"] for r in rows] == [1, 2, 3]
  assert [r["source_id"] for r in rows] == [101, 100, 102]
  assert rows[0]["gamma_normalized"] == 1.0
  np.testing.assert_allclose([r["gamma_normalized"] for r in rows], [1, 0.4, 0.2])
  assert all(r["gamma_max"] == 0.6 for r in rows)
  assert rows[0]["num_classes"] == 3 and rows[0]["classes"] == "0 1 2"
  assert np.isnan(rank_lib.ranking_rows(zoo, scores, None)[0]["gamma_max"])
  # Ties keep source order (stable).
  tied = rank_lib.ranking_rows(zoo, np.array([0.3, 0.3, 0.1]), None)
  assert [r["source_id"] for r in tied] == [100, 101, 102]
  rank_lib.write_ranking(str(tmp_path), zoo, scores, 0.6, {"method": "cmi_knn"})
  data = json.loads((tmp_path / "ranking.json").read_text())
  assert data["method"] == "cmi_knn" and len(data["ranking"]) == 3
  csv_lines = (tmp_path / "ranking.csv").read_text().strip().splitlines()
  assert len(csv_lines) == 4 and csv_lines[0].startswith("rank,source_id")
  table = rank_lib.format_table(rows)
  assert "normalized" in table and len(table.splitlines()) == 5


def test_gamma_max_is_zero_when_t_determines_y():
  labels = np.arange(40) % 2
  rng = np.random.default_rng(0)
  inp = dataclasses.replace(
      _rank_inputs(n=40, labels=labels),
      t=(5.0 * labels + 0.1 * rng.standard_normal(40))[:, None].astype(np.float32))
  # Binned: the plug-in H(Y | T~) on T's codes (quantile bins; with 2 bins the
  # median split separates the classes exactly).
  assert rank_lib.gamma_max(inp, RankConfig(method="cmi_binned", bins_t=2)
                            ) == pytest.approx(0.0, abs=1e-6)
  codes, _ = est.t_codes(inp.t, bins_t=3)
  joint = np.unique(np.stack([np.asarray(codes), labels]), axis=1,
                    return_counts=True)[1]
  marginal = np.unique(np.asarray(codes), return_counts=True)[1]
  h = scipy.stats.entropy(joint) - scipy.stats.entropy(marginal)
  assert rank_lib.gamma_max(inp, RankConfig(method="cmi_binned", bins_t=3)
                            ) == pytest.approx(h, abs=1e-5)
  assert rank_lib.gamma_max(inp, RankConfig(method="cmi_knn")) == pytest.approx(
      0.0, abs=0.1)
  # With T independent of Y, H(Y | T) is close to H(Y) = log 2.
  noise = dataclasses.replace(inp, t=rng.standard_normal((40, 1)).astype(np.float32))
  assert rank_lib.gamma_max(noise, RankConfig(method="cmi_knn")) == pytest.approx(
      np.log(2), abs=0.15)


# ----------------------------------------------------------------------------
# job.py
# ----------------------------------------------------------------------------


def test_open_zoo_missing_dir(tmp_path):
  with pytest.raises(CheckpointError, match="experiments.train_sources"):
    job_lib.open_zoo(str(tmp_path / "nothing"))


def test_load_target_for_zoo_sizes(tmp_path):
  zoo = _fake_zoo()
  with pytest.raises(ConfigError, match=r"--image_size=9 .*20x20"):
    job_lib.load_target_for_zoo("mnist:4,9", zoo, 9)
  with pytest.raises(ConfigError, match="spot9"):
    job_lib.load_target_for_zoo("spots", zoo, None)
  # Without --image_size the target is loaded at the zoo's size.
  path = tmp_path / "t.npz"
  rng = np.random.default_rng(0)
  np.savez(path, images=rng.integers(0, 255, (10, 28, 28)).astype(np.uint8),
           labels=np.arange(10) % 2)
  target = job_lib.load_target_for_zoo(f"npz:{path}", zoo, None)
  assert target.images.shape == (10, 20, 20, 1)
  assert job_lib.load_target_for_zoo(f"npz:{path}", zoo, 20).image_size == 20


def test_zoo_without_features_layer_is_a_clear_error():
  params = _random_params(3, 4, 0)
  del params["fc"]
  with pytest.raises(ConfigError, match=r"lack layer\(s\) \['fc'\].*penultimate"):
    rank_lib.zoo_inputs(_fake_zoo(params=params), _scoring())
