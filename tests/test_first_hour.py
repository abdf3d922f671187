"""What a new user meets first: the public estimator's default, ranking
uncertainty, weak-source warnings, logging, --helpshort, report text, tables."""
import dataclasses
import logging
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import transferjax.estimators as E
from transferjax import cli
from transferjax.data.tasks import SourceTask
from transferjax.errors import EstimatorError
from transferjax.evaluation import answer, report, stats
from transferjax.scoring import uncertainty, weak
from transferjax.scoring.methods import RankConfig, RankInputs, score_method

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _inputs(n=90, q=4, d=200, seed=0):
  """200-d ReLU-like features as a zoo gives; source i carries i units of signal."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 2
  signal = np.arange(q)[:, None, None] * 0.3 * (labels[None, :, None] - 0.5)
  feats = np.maximum(rng.standard_normal((q, n, d)) + signal, 0).astype(np.float32)
  t = np.stack([labels + 0.7 * rng.standard_normal(n),
                -labels + 0.7 * rng.standard_normal(n)], 1).astype(np.float32)
  return RankInputs(labels=labels, t=t, features=feats,
                    source_logits=np.zeros((q, n, 3), np.float32),
                    source_num_classes=np.full(q, 3), folds=np.arange(n) % 3,
                    source_metrics={})


# ------------------------------------------------------------------ item 1


def test_public_default_is_the_ranking_estimator_and_uses_t():
  inp = _inputs()
  ranking = score_method(inp, RankConfig())
  key = jax.random.key(RankConfig().seed)
  public = np.asarray(E.cmi_knn_many(inp.labels, inp.features, inp.t,
                                     metric="euclidean", key=key))
  np.testing.assert_allclose(public, ranking, rtol=0, atol=1e-6)
  public = np.asarray(E.cmi_knn_many(inp.labels, inp.features, inp.t,
                                     metric="euclidean", jitter=1e-6, key=key))
  # The same numbers as the ranking computed before the scaling moved into the
  # estimator: z-score in float64, F / sqrt(live dims), unstandardized kernel.
  f = inp.features.astype(np.float64)
  f = (f - f.mean(1, keepdims=True)) / f.std(1, keepdims=True)
  f = (f / np.sqrt(f.shape[-1])).astype(np.float32)
  t = ((inp.t - inp.t.mean(0)) / inp.t.std(0)).astype(np.float32)
  old = np.asarray(E.cmi_knn_many(inp.labels, f, t, metric="euclidean",
                                  jitter=1e-6, key=key, f_scale="none",
                                  standardize=False))
  np.testing.assert_allclose(public, old, atol=1e-6)
  # Conditioning is not void: with T the scores differ from I(Y; F) ...
  no_t = np.asarray(E.cmi_knn_many(inp.labels, inp.features, None,
                                   metric="euclidean", jitter=1e-6, key=key))
  assert np.max(np.abs(public - no_t)) > 0.01
  # ... while the unscaled estimator collapses to it on 200-d features.
  unscaled = [np.asarray(E.cmi_knn_many(inp.labels, inp.features, tt,
                                        metric="euclidean", f_scale="none"))
              for tt in (inp.t, None)]
  np.testing.assert_allclose(unscaled[0], unscaled[1], atol=1e-6)
  # One-source cmi_knn has the same default.
  one = E.cmi_knn(inp.labels, inp.features[2], inp.t, metric="euclidean",
                  jitter=1e-6, key=jax.random.fold_in(key, 2))
  assert abs(float(one) - public[2]) < 1e-6


def test_many_local_terms_average_to_the_scores():
  inp = _inputs(q=3)
  est, local = E.cmi_knn_many(inp.labels, inp.features, inp.t, return_local=True)
  assert local.shape == (3, 90)
  np.testing.assert_allclose(np.asarray(local).mean(1), np.asarray(est), atol=1e-6)
  with pytest.raises(EstimatorError, match="f_scale"):
    E.cmi_knn(inp.labels, inp.features[0], inp.t, f_scale="l2")


# ------------------------------------------------------------------ item 2


def test_bootstrap_uncertainty():
  inp = _inputs(q=4)
  cfg = RankConfig()
  scores = score_method(inp, cfg)
  u = uncertainty.score_uncertainty(inp, cfg, scores, key=jax.random.key(1),
                                    num_boot=400)
  assert u["ci_low"].shape == (4,) and np.all(u["ci_low"] <= scores + 1e-9)
  assert np.all(scores <= u["ci_high"] + 1e-9)
  assert abs(u["p_first"].sum() - 1) < 1e-9
  assert u["top_index"] == int(np.argmax(scores))
  assert u["p_top_first"] == u["p_first"][u["top_index"]]
  # Same key -> same numbers; another key -> other resamples.
  again = uncertainty.score_uncertainty(inp, cfg, scores, key=jax.random.key(1),
                                        num_boot=400)
  np.testing.assert_array_equal(u["ci_low"], again["ci_low"])
  # A null-corrected score is shifted: its interval moves with it.
  shifted = uncertainty.score_uncertainty(inp, cfg, scores - 1.0,
                                          key=jax.random.key(1), num_boot=400)
  np.testing.assert_allclose(shifted["ci_low"], u["ci_low"] - 1.0, atol=1e-6)
  # Methods that are not a mean over samples have no interval.
  assert uncertainty.score_uncertainty(
      inp, dataclasses.replace(cfg, method="source_n_classes"), scores,
      key=jax.random.key(1)) is None


def test_p_first_with_one_clear_winner():
  local = np.stack([np.full(50, 1.0), np.zeros(50), np.r_[np.ones(25), -np.ones(25)]])
  boot = uncertainty.bootstrap_means(local, jax.random.key(0), 200)
  s = uncertainty.summarize(boot, local.mean(1))
  assert s["p_top_first"] == 1.0 and s["top_index"] == 0
  assert s["ci_low"][1] == s["ci_high"][1] == 0.0


# ------------------------------------------------------------------ item 8


def test_weak_sources_are_named_with_the_fix():
  tasks = [SourceTask(7, "p", tuple(range(10)), np.arange(3), np.arange(2)),
           SourceTask(8, "p", (0, 1), np.arange(3), np.arange(2))]
  found = weak.weak_sources(tasks, [0.12, 0.9])
  assert [w["source_id"] for w in found] == [7]
  msg = weak.weak_sources_message(found, 2, {"epochs": 1, "max_per_class": 10})
  assert "7 (0.12 vs chance 0.10)" in msg and "8 (" not in msg
  assert "--epochs, now 1" in msg and "--max_per_class, now 10" in msg
  assert weak.weak_sources_message([], 2) is None
  assert weak.weak_sources(tasks, [np.nan, 0.5]) == [
      {"source_id": 8, "holdout_acc": 0.5, "chance": 0.5}]


# ------------------------------------------------------------------ item 3


def test_library_info_is_filtered_but_ours_is_not():
  f = cli._OwnInfoOnly()
  rec = lambda path, level: logging.LogRecord("x", level, path, 1, "m", None, None)
  ours = os.path.join(ROOT, "transferjax", "train", "zoo.py")
  theirs = "/usr/lib/python3/site-packages/orbax/checkpoint/checkpointer.py"
  assert f.filter(rec(ours, logging.INFO))
  assert not f.filter(rec(theirs, logging.INFO))
  assert f.filter(rec(theirs, logging.WARNING))
  assert f.filter(rec(os.path.join(ROOT, "experiments", "rank.py"), logging.INFO))


def test_verbosity_flag_wins_over_the_default():
  from absl import flags
  from absl import logging as absl_logging
  handler = absl_logging.get_absl_handler()
  flag = flags.FLAGS["verbosity"]
  saved = (absl_logging.get_verbosity(), flag.present)
  try:
    flag.present = 0
    cli.configure_logging("info")
    assert absl_logging.get_verbosity() == absl_logging.INFO
    assert sum(isinstance(f, cli._OwnInfoOnly) for f in handler.filters) == 1
    absl_logging.set_verbosity(absl_logging.WARNING)  # as --verbosity=-1 does
    flag.present = 1
    cli.configure_logging("info")
    assert absl_logging.get_verbosity() == absl_logging.WARNING
    assert not any(isinstance(f, cli._OwnInfoOnly) for f in handler.filters)
  finally:
    for f in [f for f in handler.filters if isinstance(f, cli._OwnInfoOnly)]:
      handler.removeFilter(f)
    absl_logging.set_verbosity(saved[0])
    flag.present = saved[1]


# ------------------------------------------------------------------ item 5


@pytest.mark.parametrize("module, wanted", [
    ("experiments.transfer", ["--target", "--num_labeled", "--num_splits", "--num_seeds"]),
    ("experiments.evaluate", ["--target", "--num_labeled", "--num_splits", "--methods"]),
])
def test_helpshort_lists_the_entry_points_own_flags(module, wanted):
  out = subprocess.run([sys.executable, "-m", module, "--helpshort"], cwd=ROOT,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"),
                       capture_output=True, text=True, timeout=240)
  text = out.stdout + out.stderr
  for flag in wanted:
    assert f"  {flag}:" in text, (flag, text[-3000:])
  if module == "experiments.transfer":  # ranking-only flags stay out
    assert "  --methods:" not in text


# ------------------------------------------------------------------ item 7, 9


def test_subpools_are_capped_by_distinct_pools():
  assert stats.distinct_pools(8, 7) == 8
  pools = stats.subpool_indices(8, 7, 100)
  assert pools.shape == (8, 7) and len({tuple(p) for p in pools}) == 8
  assert stats.subpool_indices(30, 10, 100).shape == (100, 10)
  rng = np.random.default_rng(0)
  auc = rng.uniform(0.6, 0.9, (8, 1, 1))
  ev = report.evaluate_methods({"a": rng.normal(size=8), "b": rng.normal(size=8)},
                               auc, no_transfer=[0.7], pool_size=10)
  assert ev["subpool"]["num_pools"] == 8 and ev["subpool"]["exhaustive"]
  assert ev["methods"]["a"]["subpool"]["num_pools"] == 8


def _study_like(truth, no_transfer, runs=1, sign=1.0):
  rng = np.random.default_rng(0)
  auc = truth[:, None, None] + 0.001 * rng.standard_normal((len(truth), runs, 1))
  scores = {"cmi_knn": sign * truth + 0.01 * rng.standard_normal(len(truth)),
            "mi_knn": rng.normal(size=len(truth))}
  ev = report.evaluate_methods(scores, auc, no_transfer=[no_transfer] * runs)
  rows = answer.source_rows(list(range(100, 100 + len(truth))), [3] * len(truth),
                            auc, scores["cmi_knn"], "cmi_knn", no_transfer)
  return ev, rows


def test_answer_names_the_source_or_says_none_beats_scratch(tmp_path):
  truth = np.linspace(0.7, 0.9, 6)
  ev, rows = _study_like(truth, 0.75)
  text = answer.answer(ev, rows, "cmi_knn")
  assert "Recommended source: 105" in text and "p = " in text
  assert "ceiling) is undefined" in text         # one run per source
  assert np.isnan(rows[0]["AUC sd"])             # one run: sd undefined, not 0
  assert "transfers negatively" not in text
  assert "fine-tuned AUC" in text
  # A multi-class ground truth is named as what it is, not as AUC.
  acc_text = answer.answer({**ev, "ground_truth_metric": "accuracy"}, rows, "cmi_knn")
  assert "fine-tuned accuracy" in acc_text and " AUC" not in acc_text
  # A pick below scratch while another source beats it: said so.
  ev3, rows3 = _study_like(truth, 0.8, sign=-1.0)
  text3 = answer.answer(ev3, rows3, "cmi_knn")
  assert "Recommended source: 100" in text3 and "transfers negatively" in text3
  ev2, rows2 = _study_like(truth, 0.95)
  assert "No source beats training from scratch here" in answer.answer(
      ev2, rows2, "cmi_knn")
  # The report leads with the answer and the table, defines its statistics and
  # shows p-values; the tables also come as CSV and LaTeX.
  lead = ["## Answer", "", text, "", report.leaderboard_markdown(rows)]
  path = report.write_report(str(tmp_path), ev, lead=lead)
  md = open(path, encoding="utf-8").read()
  assert md.index("## Answer") < md.index("## Methods") < md.index("## Definitions")
  for term in ("rel@1", "Setup Stability", "degenerate", "(ceiling)", "Spearman p"):
    assert term in md
  assert "(one run: sd undefined)" in md
  csv_path, tex_path = answer.write_tables(str(tmp_path), ev, "cmi\\_knn & co")
  assert open(csv_path).readline().startswith("method,weighted_tau")
  tex = open(tex_path).read()
  assert r"\begin{tabular}" in tex and r"mi\_knn" in tex and "--" in tex


def test_ranking_explanations():
  from transferjax.scoring.rank import explain_scores
  rows = [{"source_id": 5, "gamma": -0.01, "gamma_ci_low": -0.05,
           "gamma_ci_high": 0.03},
          {"source_id": 2, "gamma": -0.02, "gamma_ci_low": -0.06,
           "gamma_ci_high": 0.02}]
  unc = {"p_top_first": 0.6, "num_boot": 1000}
  text = explain_scores(rows, unc, 50, "cmi_knn")
  assert "negative" in text and "No source shows information" in text
  rows[0]["gamma"] = rows[0]["gamma_ci_high"] = 0.2
  text = explain_scores(rows, unc, 50, "cmi_knn")
  assert "Recommended: source 5 (P(first) = 0.60" in text and "[2]" in text
  text = explain_scores(rows, None, 50, "logme")
  assert "Recommended: source 5 (no interval for method logme" in text
  assert "gamma:" not in text
