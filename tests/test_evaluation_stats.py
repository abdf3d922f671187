"""Tests for transferjax.evaluation.stats: closed forms and independent references."""
import itertools

import numpy as np
import pytest
from scipy import stats as sps

from transferjax.errors import EstimatorError
from transferjax.evaluation import stats


def _kendall_a_bruteforce(x, y):
  """Kendall tau-a by counting pairs (equals tau-b when there are no ties)."""
  n = len(x)
  s = 0
  for i, j in itertools.combinations(range(n), 2):
    s += np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
  return s / (n * (n - 1) / 2)


def _spearman_numpy(x, y):
  rx = np.argsort(np.argsort(x)).astype(float)
  ry = np.argsort(np.argsort(y)).astype(float)
  return np.corrcoef(rx, ry)[0, 1]


class TestRankStatistics:

  def test_perfect_and_reversed(self):
    truth = np.array([0.7, 0.9, 0.8, 0.6, 0.95])
    st = stats.rank_statistics(2 * truth + 1, truth)
    for k in stats.CORRELATIONS:
      assert st[k] == pytest.approx(1.0)
    assert st["top1_hit"] == 1.0 and st["top3_hit"] == 1.0
    assert st["rel_top1"] == 1.0 and st["regret"] == 0.0
    st = stats.rank_statistics(-truth, truth)
    for k in stats.CORRELATIONS:
      assert st[k] == pytest.approx(-1.0)
    assert st["top1_hit"] == 0.0 and st["top3_hit"] == 0.0
    # The top-scored source is the worst one.
    assert st["regret"] == pytest.approx(0.95 - 0.6)
    assert st["rel_top1"] == pytest.approx(0.6 / 0.95)

  def test_matches_independent_references(self):
    rng = np.random.default_rng(1)
    truth = rng.normal(size=15)
    scores = truth + rng.normal(size=15)
    st = stats.rank_statistics(scores, truth)
    assert st["kendall_tau"] == pytest.approx(_kendall_a_bruteforce(scores, truth))
    assert st["spearman"] == pytest.approx(_spearman_numpy(scores, truth))
    assert st["pearson"] == pytest.approx(np.corrcoef(scores, truth)[0, 1])
    # weightedtau with rank=True is symmetric and invariant to monotone maps.
    assert st["weighted_tau"] == pytest.approx(sps.weightedtau(truth, scores)[0])
    st2 = stats.rank_statistics(np.exp(scores), truth)
    assert st2["weighted_tau"] == pytest.approx(st["weighted_tau"])
    assert st2["kendall_tau"] == pytest.approx(st["kendall_tau"])

  def test_weighted_tau_weights_the_top(self):
    # Swapping the two best sources costs more than swapping the two worst.
    truth = np.arange(10.0)
    top_swap = truth.copy()
    top_swap[[8, 9]] = top_swap[[9, 8]]
    bottom_swap = truth.copy()
    bottom_swap[[0, 1]] = bottom_swap[[1, 0]]
    wt_top = stats.rank_statistics(top_swap, truth)["weighted_tau"]
    wt_bot = stats.rank_statistics(bottom_swap, truth)["weighted_tau"]
    assert wt_top < wt_bot < 1.0
    # Plain Kendall cannot tell them apart.
    assert (stats.rank_statistics(top_swap, truth)["kendall_tau"] ==
            pytest.approx(stats.rank_statistics(bottom_swap, truth)["kendall_tau"]))

  def test_constant_scores_nan_and_expected_hits(self):
    truth = np.array([0.1, 0.5, 0.3, 0.2, 0.4])
    st = stats.rank_statistics(np.ones(5), truth)
    for k in stats.CORRELATIONS:
      assert np.isnan(st[k])
    assert any("constant" in n for n in st["notes"])
    assert st["top1_hit"] == pytest.approx(1 / 5)
    assert st["top3_hit"] == pytest.approx(3 / 5)
    assert st["rel_top1"] == pytest.approx(truth.mean() / truth.max())
    assert st["regret"] == pytest.approx(truth.max() - truth.mean())

  def test_scores_equal_up_to_rounding_are_ties(self):
    # H-score with n < d is exactly 1 up to ~1e-13: ranking on that noise would
    # report a tau of pure chance as a result.
    truth = np.array([0.1, 0.5, 0.3, 0.2, 0.4])
    noisy_one = 1.0 + np.array([3e-14, -1e-13, 2e-14, 1.5e-13, -4e-14])
    st = stats.rank_statistics(noisy_one, truth)
    assert np.isnan(st["weighted_tau"]) and st["top1_hit"] == pytest.approx(1 / 5)
    # Real differences far below the scores' magnitude still rank.
    tiny_but_real = 1e6 + np.array([1.0, 5.0, 3.0, 2.0, 4.0]) * 1e-3
    assert stats.rank_statistics(tiny_but_real, truth)["spearman"] == pytest.approx(1.0)

  def test_constant_truth_is_nan_not_crash(self):
    st = stats.rank_statistics([3.0, 1.0, 2.0], [0.5, 0.5, 0.5])
    assert np.isnan(st["spearman"]) and np.isnan(st["weighted_tau"])
    assert st["regret"] == 0.0

  def test_expected_top_k_hit_matches_monte_carlo(self):
    # Independent reference: break score ties at random many times and count.
    rng = np.random.default_rng(0)
    scores = np.array([3, 3, 3, 2, 2, 1, 5, 2], dtype=float)
    truth = np.array([0.1, 0.9, 0.2, 0.9, 0.3, 0.4, 0.5, 0.6])
    for k in (1, 2, 3, 4, 5):
      hits = 0
      trials = 20000
      for _ in range(trials):
        order = np.lexsort((rng.random(len(scores)), -scores))
        hits += np.any(truth[order[:k]] == truth.max())
      assert stats.expected_top_k_hit(scores, truth, k) == pytest.approx(
          hits / trials, abs=0.015)

  def test_top3_hit_with_fewer_than_three_sources(self):
    assert stats.rank_statistics([1.0, 2.0], [2.0, 1.0])["top3_hit"] == 1.0

  def test_negative_transfer_counts(self):
    truth = np.array([0.90, 0.95, 0.80, 0.99, 0.85, 0.97])
    no_transfer = 0.9  # 0.80 and 0.85 are negative transfer (0.90 is not <)
    st = stats.rank_statistics(truth, truth, no_transfer=no_transfer)
    assert st["num_negative"] == 2
    assert st["negative_in_bottom_half"] == 2
    assert st["negative_in_bottom_half_chance"] == pytest.approx(1.0)
    st = stats.rank_statistics(-truth, truth, no_transfer=no_transfer)
    assert st["negative_in_bottom_half"] == 0
    # Constant score: each source is in the bottom 3 of 6 with probability 1/2.
    st = stats.rank_statistics(np.ones(6), truth, no_transfer=no_transfer)
    assert st["negative_in_bottom_half"] == pytest.approx(1.0)
    # Odd q: the bottom half is the floor(7/2) = 3 lowest; a tie across the cut.
    st = stats.rank_statistics([1, 2, 3, 3, 5, 6, 7], [0, 1, 2, 3, 4, 5, 6],
                               no_transfer=3.5)  # negatives: sources 0..3
    # Sources 0, 1 surely in the bottom 3; 2 and 3 share position 3: 1/2 each.
    assert st["negative_in_bottom_half"] == pytest.approx(3.0)
    assert st["negative_in_bottom_half_chance"] == pytest.approx(4 * 3 / 7)

  @pytest.mark.parametrize("scores,truth,match", [
      ([1.0, 2.0], [1.0, 2.0, 3.0], "same length"),
      ([1.0], [1.0], "at least 2"),
      ([1.0, np.nan, 2.0], [1.0, 2.0, 3.0], "non-finite"),
      ([[1.0, 2.0]], [[1.0, 2.0]], "1-D"),
  ])
  def test_bad_input(self, scores, truth, match):
    with pytest.raises(EstimatorError, match=match):
      stats.rank_statistics(scores, truth)


class TestReliability:

  def _auc(self, effects, noise_sd, seeds=3, splits=3, run_shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    q = len(effects)
    shift = run_shift * rng.normal(size=(1, seeds, splits))
    return (0.9 + np.asarray(effects)[:, None, None] + shift
            + noise_sd * rng.normal(size=(q, seeds, splits)))

  def test_clear_signal_is_reliable(self):
    effects = np.linspace(-0.05, 0.05, 20)
    rel = stats.reliability(self._auc(effects, 0.002))
    assert not rel["degenerate"]
    assert rel["split_half"]["spearman"] > 0.95
    assert rel["spread"] == pytest.approx(effects.std(ddof=1), rel=0.05)
    assert rel["spearman_brown"] == pytest.approx(
        2 * rel["split_half"]["spearman"] / (1 + rel["split_half"]["spearman"]))
    assert rel["ceiling_upper"] == pytest.approx(np.sqrt(rel["spearman_brown"]))
    assert rel["ceiling"]["spearman"] == rel["split_half"]["spearman"]
    assert rel["noise_se"] == pytest.approx(rel["noise"] / 3.0)  # R = 9

  def test_pure_noise_is_degenerate(self):
    rel = stats.reliability(self._auc(np.zeros(20), 0.01, seeds=4, splits=2))
    assert rel["degenerate"]
    assert abs(rel["split_half"]["spearman"]) < 0.3
    # Equal sources: the spread of the means is about the noise SE.
    assert 0.5 < rel["spread_to_noise_se"] < 2.0

  def test_noise_estimate_and_shared_shift_removed(self):
    effects = np.linspace(-0.02, 0.02, 30)
    base = stats.reliability(self._auc(effects, 0.01, seeds=10, splits=2))
    # Known noise sd, up to the (q-1)/q centering factor and sampling error.
    assert base["noise"] == pytest.approx(0.01, rel=0.1)
    shifted = stats.reliability(self._auc(effects, 0.01, seeds=10, splits=2,
                                          run_shift=0.2))
    # A shift shared by every source (an easier split) is not ranking noise.
    assert shifted["noise"] == pytest.approx(base["noise"], rel=1e-6)

  def test_halvings_are_seeded(self):
    auc = self._auc(np.linspace(0, 0.01, 10), 0.005)
    a = stats.reliability(auc, seed=3)
    b = stats.reliability(auc, seed=3)
    assert a["split_half"] == b["split_half"]

  def test_two_dimensional_input_and_errors(self):
    rel = stats.reliability(np.random.default_rng(0).normal(size=(5, 4)))
    assert rel["num_runs"] == 4
    with pytest.raises(EstimatorError, match="at least 2 runs"):
      stats.reliability(np.zeros((5, 1, 1)))
    with pytest.raises(EstimatorError, match="at least 3 sources"):
      stats.reliability(np.zeros((2, 3, 3)))
    with pytest.raises(EstimatorError, match="non-finite"):
      stats.reliability(np.full((4, 2, 2), np.nan))

  def test_constant_truth_does_not_crash(self):
    rel = stats.reliability(np.full((6, 2, 2), 0.99))
    assert rel["degenerate"]
    assert np.isnan(rel["split_half"]["spearman"])


class TestSubpools:

  def test_indices_distinct_and_seeded(self):
    pools = stats.subpool_indices(12, 5, 30, seed=4)
    assert pools.shape == (30, 5)
    assert all(len(set(p)) == 5 for p in pools)
    np.testing.assert_array_equal(pools, stats.subpool_indices(12, 5, 30, seed=4))
    with pytest.raises(EstimatorError, match="pool_size"):
      stats.subpool_indices(4, 5, 3)

  def test_perfect_score_is_stable(self):
    truth = np.random.default_rng(0).random(25)
    out = stats.subpool_stability(truth, truth, pool_size=6, num_pools=40)
    assert out["mean"] == pytest.approx(1.0) and out["sd"] == pytest.approx(0.0)
    assert out["top1_hit_mean"] == 1.0 and out["regret_mean"] == 0.0
    assert out["taus"].shape == (40,)

  def test_table_matches_single_method_calls(self):
    rng = np.random.default_rng(2)
    truth = rng.random(15)
    methods = {"a": truth + rng.normal(size=15), "b": rng.random(15)}
    names, taus = stats.subpool_table(methods, truth, pool_size=5, num_pools=10)
    assert names == ["a", "b"] and taus.shape == (10, 2)
    np.testing.assert_allclose(taus[:, 1], stats.subpool_stability(
        methods["b"], truth, pool_size=5, num_pools=10)["taus"])


def _google_reference_ss(df, varying, fixing):
  """A pandas port of google-research stable_transfer setup_stability_score.py."""
  def graph(common, varying):
    outcomes = [g[1]["score"].values for g in common.groupby(varying)]
    return np.nanmean([sps.kendalltau(a, b)[0]
                       for a, b in itertools.combinations(outcomes, 2)])
  return np.nanmean([graph(cs[1], varying) for cs in df.groupby(list(fixing))])


class TestSetupStability:

  def test_identical_rankings_score_one(self):
    outcomes = np.tile([0.1, 0.5, 0.3], (20, 1))
    assert stats.setup_stability_score(outcomes) == pytest.approx(1.0)

  def test_reversed_pair_scores_minus_one(self):
    assert stats.setup_stability_score([[1, 2, 3], [3, 2, 1]]) == pytest.approx(-1.0)

  def test_random_rankings_score_near_zero(self):
    # google's own test: 100 setups x 3 metrics, uniform scores -> about 0.
    outcomes = np.random.default_rng(0).uniform(size=(100, 3))
    assert stats.setup_stability_score(outcomes) == pytest.approx(0.0, abs=0.05)

  def test_groups_are_averaged(self):
    perfect = np.tile([1.0, 2.0, 3.0], (5, 1))
    flip = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]] * 2 + [[1.0, 2.0, 3.0]])
    # flip group (3 rows A, 2 rows reversed B): of 10 pairs, A-A 3 and B-B 1 agree
    # (+1), the 6 A-B pairs disagree (-1): -0.2. Mean with the perfect group: 0.4.
    assert stats.setup_stability_score(np.stack([perfect, flip])) == pytest.approx(0.4)

  def test_records_match_google_reference(self):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(5)
    records = []
    base = rng.random(4)
    for measure in ("w-kendall", "pearson"):
      for target in range(3):
        for pool in range(6):
          noise = rng.normal(scale=0.3, size=4)
          for m, name in enumerate(["gbc", "leep", "logme", "cmi"]):
            records.append({"metric": name, "measure": measure, "target": target,
                            "pool": pool, "score": base[m] + noise[m]})
    df = pd.DataFrame(records).sort_values(["measure", "target", "pool", "metric"])
    for varying, fixing in (("pool", ("measure", "target")),
                            ("target", ("measure", "pool"))):
      ours = stats.setup_stability_score_from_records(records, varying=varying,
                                                      fixing=fixing)
      assert ours == pytest.approx(_google_reference_ss(df, varying, fixing))

  def test_records_missing_metric_raises(self):
    records = [{"metric": "a", "t": 0, "f": 0, "score": 1.0},
               {"metric": "b", "t": 0, "f": 0, "score": 2.0},
               {"metric": "a", "t": 1, "f": 0, "score": 1.0}]
    with pytest.raises(EstimatorError, match="lacks metrics"):
      stats.setup_stability_score_from_records(records, varying="t", fixing=("f",))

  def test_bad_shape(self):
    with pytest.raises(EstimatorError, match=">= 2 varying"):
      stats.setup_stability_score(np.ones((1, 3)))
