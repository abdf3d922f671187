"""The testbed pieces: few-shot multi-class splits, multi-class ground truth, the
transfer-matters diagnostic, zoo unions and the suite leaderboard statistics."""
import numpy as np
import pytest

import testlib
from transferjax.data import load_target, paper_split
from transferjax.data.container import Dataset
from transferjax.data.splits import class_subset
from transferjax.errors import ConfigError, DataError, EstimatorError
from transferjax.evaluation import diagnostic, suite_board
from transferjax.transfer import gt_metrics


def _pool():
  return testlib.synthetic_pool()


def test_class_subset_relabels_in_given_order():
  ds = class_subset(_pool(), ["c4", "c1", "c2"])
  assert ds.class_names == ("c4", "c1", "c2")
  assert ds.num_examples == 36
  assert np.array_equal(np.bincount(ds.labels), [12, 12, 12])
  base = _pool()
  # Label 0 is pool class 4: the same images.
  assert np.allclose(ds.images[ds.labels == 0], base.images[base.labels == 4])
  with pytest.raises(DataError, match="repeat"):
    class_subset(base, ["c1", "c1", "c2"])


def test_shots_per_class_split_sizes_and_cap():
  sp = paper_split(_pool(), shots_per_class=6, val_fraction=0.34, seed=3,
                   max_test_per_class=4)
  for part, per_class in (("train", 4), ("val", 2), ("test", 4)):
    counts = np.bincount(getattr(sp, part).labels, minlength=6)
    assert np.all(counts == per_class), (part, counts)
  # Disjoint parts.
  rows = lambda d: {x.tobytes() for x in d.images}
  assert not rows(sp.train) & rows(sp.test) and not rows(sp.val) & rows(sp.test)
  assert sp.train.metadata["split"]["shots_per_class"] == 6
  with pytest.raises(DataError, match="shots_per_class >= 3"):
    paper_split(_pool(), shots_per_class=2)
  with pytest.raises(DataError, match="fewer than shots_per_class"):
    paper_split(_pool(), shots_per_class=12)


def test_gt_metrics():
  labels = np.array([0, 0, 1, 1, 2, 2, 2, 2])
  logits = np.eye(3)[[0, 1, 1, 1, 2, 2, 2, 0]] * 3.0
  assert gt_metrics.score_logits(labels, logits, "accuracy", 3) == pytest.approx(6 / 8)
  assert gt_metrics.score_logits(labels, logits, "balanced_accuracy", 3) == \
      pytest.approx((0.5 + 1 + 0.75) / 3)
  assert gt_metrics.resolve_metric("auto", 2) == "auc"
  assert gt_metrics.resolve_metric("auto", 5) == "accuracy"
  with pytest.raises(ConfigError, match="binary"):
    gt_metrics.resolve_metric("auc", 3)
  b = np.array([0, 1, 1, 0])
  assert gt_metrics.score_logits(b, np.array([[0, 1], [0, 2], [0, 0.8], [0, 0.5]]),
                                 "auc", 2) == pytest.approx(0.75)


def test_diagnostic_separates_informative_from_flat():
  rng = np.random.default_rng(0)
  q, runs = 20, 6
  quality = np.linspace(0.5, 0.8, q)
  good = quality[:, None] + 0.01 * rng.standard_normal((q, runs))
  nt = 0.6 + 0.01 * rng.standard_normal(runs)
  d = diagnostic.transfer_matters(good, nt)
  assert d["informative"] and d["reliability"] > 0.9
  assert d["best_gain"] == pytest.approx(good[np.argmax(good.mean(1))].mean() - nt.mean())
  assert d["best_gain_ci"][0] < d["best_gain"] < d["best_gain_ci"][1]
  assert d["num_positive"] + d["num_negative"] == q
  flat = 0.7 + 0.01 * rng.standard_normal((q, runs))
  d2 = diagnostic.transfer_matters(flat, np.full(runs, 0.9))
  assert not d2["informative"] and d2["best_gain"] < 0
  assert "transfer matters? no" in diagnostic.format_line(d2)


def test_paired_bootstrap_detects_a_real_difference_only():
  rng = np.random.default_rng(1)
  a = rng.normal(0.3, 0.2, (8, 50))
  d = suite_board.paired_bootstrap(a + 0.1, a)
  assert d["lo"] == pytest.approx(0.1) and d["hi"] == pytest.approx(0.1)
  noisy = suite_board.paired_bootstrap(a + rng.normal(0, 0.3, a.shape), a)
  assert noisy["lo"] < 0 < noisy["hi"]


def test_loo_prior_uses_only_other_settings():
  recs = [{"zoo": "z", "truth": np.array([1.0, 2, 3]), "no_transfer": 0.0,
           "scores": {}},
          {"zoo": "z", "truth": np.array([3.0, 2, 1]), "no_transfer": 0.0,
           "scores": {}},
          {"zoo": "y", "truth": np.array([1.0, 2, 3]), "no_transfer": 0.0,
           "scores": {}}]
  suite_board.add_loo_prior(recs)
  assert np.argmax(recs[0]["scores"]["loo_prior"]) == 0   # the other target's best
  assert "loo_prior" not in recs[2]["scores"]             # alone in its zoo


def test_suite_config_checks():
  from transferjax import suites
  s = suites.get_suite("testbed")
  for spec in s.zoos:
    assert spec.num_sources >= 40
  assert {st.role for st in s.settings} == {"dev", "confirm"}
  with pytest.raises(ConfigError, match="Unknown suite"):
    suites.get_suite("nope")


def _search_records(rng):
  """Four settings (2 dev, 2 confirm) of 12 sources: ``oracle`` scores are the
  truth, ``noisy`` the truth plus noise, every candidate pure noise."""
  from transferjax import method_search
  recs = []
  for i, role in enumerate(("dev", "dev", "confirm", "confirm")):
    truth = rng.normal(size=12)
    scores = {c: rng.normal(size=12) for c in method_search.CANDIDATES}
    scores["oracle"] = truth.copy()
    scores["noisy"] = truth + rng.normal(0, 2.0, 12)
    recs.append({"zoo": "z", "target": f"t{i}", "role": role, "truth": truth,
                 "no_transfer": 0.0, "scores": scores, "ceiling_weighted_tau": 1.0})
  return recs


def test_method_search_chooses_on_dev_and_confirms_only_a_real_lead():
  from transferjax import method_search
  recs = _search_records(np.random.default_rng(0))
  res = method_search.choose_and_confirm(recs, ["oracle", "noisy"], pool_size=8,
                                         num_pools=20, choose_from="all")
  assert res["chosen"] == "oracle" and res["wins"]["confirm"]
  # Among the noise-only candidates none can win against the oracle baseline.
  res = method_search.choose_and_confirm(recs, ["oracle", "noisy"], pool_size=8,
                                         num_pools=20)
  assert res["chosen"] in method_search.CANDIDATES and not res["wins"]["confirm"]
  with pytest.raises(ValueError, match="choose_from"):
    method_search.choose_and_confirm(recs, [], pool_size=8, num_pools=20,
                                     choose_from="best")


def test_split_level_reliability_counts_source_by_split_interaction_as_noise():
  """Sources whose order is set by the labeled draw (a source x split effect
  shared by every seed of a split) look reliable to halves of the runs but not
  to halves of the splits; a real source effect passes both."""
  from transferjax.evaluation import stats
  rng = np.random.default_rng(0)
  q, seeds, splits = 30, 3, 6
  seed_noise = rng.normal(0, 0.01, (q, seeds, splits))
  interaction = rng.normal(0, 1.0, (q, 1, splits))          # per (source, split)
  only_split = interaction + seed_noise
  runs_rel = stats.reliability(only_split)["spearman_brown"]
  split_rel = stats.split_level_reliability(only_split)
  assert runs_rel > 0.7                      # halves of runs share the splits
  assert split_rel["spearman_brown"] < 0.5   # halves of splits do not
  assert split_rel["num_halvings"] == 10     # C(6, 3) / 2 partitions, each once
  real = rng.normal(0, 1.0, (q, 1, 1)) + 0.2 * interaction + seed_noise
  assert stats.split_level_reliability(real)["spearman_brown"] > 0.9
  one_split = stats.split_level_reliability(real[:, :, :1])
  assert np.isnan(one_split["spearman_brown"]) and one_split["num_halvings"] == 0
  with pytest.raises(EstimatorError, match="num_seeds, num_splits"):
    stats.split_level_reliability(real[:, :, 0])


def test_informative_board_holds_only_informative_settings():
  rng = np.random.default_rng(1)
  recs = []
  for i, informative in enumerate((True, False, True, True)):
    truth = rng.normal(size=12)
    recs.append({"zoo": "z", "target": f"t{i}", "role": ("dev", "confirm")[i % 2],
                 "truth": truth, "ceiling_weighted_tau": 1.0,
                 "diagnostic": {"informative": informative},
                 "scores": {"good": truth + rng.normal(0, 0.1, 12),
                            "noise": rng.normal(size=12)}})
  res = suite_board.leaderboard(recs, ["good", "noise"], pool_size=6, num_pools=8)
  assert res["boards"]["informative"]["settings"] == ["t0@z", "t2@z", "t3@z"]
  assert res["boards"]["informative"]["board"][0]["method"] == "good"
  assert suite_board.board_settings(recs, "confirm") == [1, 3]
  for r in recs[2:]:
    r["diagnostic"]["informative"] = False          # one left: no board to bootstrap
  assert "informative" not in suite_board.leaderboard(
      recs, ["good", "noise"], pool_size=6, num_pools=8)["boards"]
