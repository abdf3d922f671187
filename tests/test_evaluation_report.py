"""Tests for transferjax.evaluation.figures and .report."""
import json
import os

import numpy as np
import pytest

from transferjax import io
from transferjax.errors import EstimatorError
from transferjax.evaluation import figures, report

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
  assert os.path.getsize(path) > 1000
  with open(path, "rb") as f:
    assert f.read(8) == _PNG_MAGIC


@pytest.fixture
def setting():
  rng = np.random.default_rng(0)
  q = 12
  effects = np.linspace(-0.04, 0.04, q)
  auc = 0.9 + effects[:, None, None] + 0.003 * rng.normal(size=(q, 3, 2))
  truth = auc.mean(axis=(1, 2))
  methods = {"cmi": truth + 0.01 * rng.normal(size=q),
             "rbm": -rng.random(q),          # negated errors: all negative
             "constant": np.ones(q)}
  return auc, methods


class TestFigures:

  def test_normalize_scores(self):
    x, label = figures.normalize_scores([1.0, 2.0, 4.0])
    np.testing.assert_allclose(x, [0.25, 0.5, 1.0])
    assert "max" in label
    # Negative scores: score/max would reverse the order; min-max keeps it.
    x, label = figures.normalize_scores([-3.0, -1.0, -2.0])
    np.testing.assert_allclose(x, [0.0, 1.0, 0.5])
    assert "min-max" in label
    x, _ = figures.normalize_scores([-1.0, -1.0])
    np.testing.assert_array_equal(x, [0.0, 0.0])

  def test_score_vs_auc(self, tmp_path, setting):
    auc, methods = setting
    path = figures.plot_score_vs_auc(methods, auc.mean(axis=(1, 2)), 0.9,
                                     str(tmp_path / "fig6.png"),
                                     auc_err=auc.reshape(12, -1).std(axis=1))
    _assert_png(path)
    with pytest.raises(EstimatorError, match="differ"):
      figures.plot_score_vs_auc({"a": np.ones(3)}, np.ones(4), 0.5,
                                str(tmp_path / "bad.png"))
    assert not os.path.exists(tmp_path / "bad.png")

  def test_features_3d(self, tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 30)
    best = rng.normal(size=(60, 20)) + 3 * labels[:, None]
    worst = rng.normal(size=(60, 2))  # fewer than 3 dims: padded, not a crash
    path = figures.plot_features_3d(best, worst, labels, str(tmp_path / "fig7.png"),
                                    class_names=["non-spot", "spot"])
    _assert_png(path)
    with pytest.raises(EstimatorError, match="labels"):
      figures.plot_features_3d(best, best[:10], labels, str(tmp_path / "bad.png"))

  def test_auc_vs_fraction(self, tmp_path):
    f = np.array([0.05, 0.1, 0.2, 0.4])
    path = figures.plot_auc_vs_fraction(f, f + 0.5, f + 0.4, f + 0.45,
                                        str(tmp_path / "fig8.png"),
                                        best_sd=0.01 * np.ones(4))
    _assert_png(path)
    with pytest.raises(EstimatorError, match="fractions"):
      figures.plot_auc_vs_fraction(f, f[:2], f, f, str(tmp_path / "bad.png"))

  def test_tau_distributions(self, tmp_path):
    rng = np.random.default_rng(0)
    taus = {"cmi": rng.normal(0.4, 0.2, 50), "rbm": rng.normal(0, 0.2, 50),
            "broken": np.full(5, np.nan)}
    path = figures.plot_tau_distributions(taus, str(tmp_path / "taus.png"),
                                          ceiling=0.8)
    _assert_png(path)


class TestReport:

  def test_evaluate_methods_structure(self, setting):
    auc, methods = setting
    ev = report.evaluate_methods(methods, auc, no_transfer=[0.9, 0.91, 0.89],
                                 pool_size=5, num_pools=20)
    assert ev["num_sources"] == 12
    assert ev["no_transfer"]["mean"] == pytest.approx(0.9)
    assert ev["no_transfer"]["sd"] == pytest.approx(0.01)
    assert set(ev["ceiling"]) == {"weighted_tau", "kendall_tau", "spearman",
                                  "pearson"}
    assert ev["degenerate"] is False
    cmi = ev["methods"]["cmi"]
    for key in ("weighted_tau", "kendall_tau", "spearman", "pearson", "top1_hit",
                "top3_hit", "rel_top1", "regret", "num_negative"):
      assert key in cmi
    assert cmi["subpool"]["pool_size"] == 5
    assert np.isnan(ev["methods"]["constant"]["spearman"])
    assert np.isfinite(ev["subpool"]["setup_stability"])

  def test_evaluate_methods_single_run_truth(self):
    ev = report.evaluate_methods({"a": [1.0, 2.0, 3.0]}, [0.5, 0.6, 0.7],
                                 num_pools=5)
    assert ev["reliability"] is None and ev["ceiling"] is None
    assert ev["methods"]["a"]["spearman"] == pytest.approx(1.0)
    # With one method there is no method ranking to be stable or not.
    assert np.isnan(ev["subpool"]["setup_stability"])

  def test_write_report(self, tmp_path, setting):
    auc, methods = setting
    ev = report.evaluate_methods(methods, auc, no_transfer=0.9, pool_size=5,
                                 num_pools=10)
    fig = figures.plot_score_vs_auc(methods, auc.mean(axis=(1, 2)), 0.9,
                                    str(tmp_path / "figs" / "fig6.png"))
    path = report.write_report(str(tmp_path / "run"), ev, [fig], "Test run",
                               ["a note"])
    text = open(path).read()
    assert text.startswith("# Test run")
    for name in methods:
      assert f"| {name} |" in text
    assert "(../figs/fig6.png)" in text
    assert "a note" in text
    assert "WARNING" not in text
    # The ceiling sits beside the correlation, in parentheses.
    ceil_sp = report.format_value(ev["ceiling"]["spearman"])
    assert f"({ceil_sp})" in text
    data = io.read_json(str(tmp_path / "run" / "evaluation.json"))
    assert data["num_sources"] == 12
    # Where it came from: commit, library versions, devices.
    assert {"commit", "versions", "devices"} <= set(data["provenance"])
    assert data["provenance"]["versions"]["jax"]
    assert data["no_transfer"]["mean"] == pytest.approx(0.9)
    assert data["methods"]["constant"]["spearman"] is None  # nan -> null
    assert data["methods"]["cmi"]["top1_hit"] == pytest.approx(
        ev["methods"]["cmi"]["top1_hit"])
    assert "ceiling" in data

  def test_degenerate_warning(self, tmp_path):
    rng = np.random.default_rng(0)
    auc = 0.99 + 0.001 * rng.normal(size=(10, 3, 3))  # no source effect at all
    ev = report.evaluate_methods({"x": rng.random(10), "y": rng.random(10)}, auc,
                                 no_transfer=0.99, num_pools=5, pool_size=4)
    assert ev["degenerate"]
    text = open(report.write_report(str(tmp_path), ev)).read()
    assert "WARNING: degenerate ground truth" in text

  def test_write_report_needs_methods(self, tmp_path):
    with pytest.raises(EstimatorError, match="methods"):
      report.write_report(str(tmp_path), {"methods": {}})

  def test_leaderboard_markdown(self):
    rows = [{"method": "a|b", "tau": 0.12345, "n": 3},
            {"method": "c", "tau": float("nan"), "extra": True}]
    text = report.leaderboard_markdown(rows)
    lines = text.strip().split("\n")
    assert lines[0] == "| method | tau | n | extra |"
    assert lines[1] == "|---|---|---|---|"
    assert lines[2] == "| a\\|b | 0.123 | 3 | – |"
    assert lines[3] == "| c | – | – | yes |"
    only = report.leaderboard_markdown(rows, ["tau"], float_fmt="{:.1f}")
    assert only.split("\n")[2] == "| 0.1 |"
    # Every line has the same number of (unescaped) column separators.
    counts = {line.replace("\\|", "").count("|") for line in lines}
    assert len(counts) == 1

  def test_evaluation_json_is_plain_json(self, tmp_path, setting):
    auc, methods = setting
    ev = report.evaluate_methods(methods, auc, num_pools=3, pool_size=4)
    report.write_report(str(tmp_path), ev)
    with open(tmp_path / "evaluation.json") as f:
      def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
      json.load(f, parse_constant=refuse)  # strict JSON: no NaN/Infinity
