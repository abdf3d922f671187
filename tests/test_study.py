"""Tests of ``transferjax.study`` (and ``scoring.job.run``) end to end, tiny.

A zoo of 4 lenet20 sources trained for one epoch on a synthetic 6-class pool,
a synthetic binary ``npz:`` target of 80 images (|D_a| = 24), 2 splits x 1
seed of 2-epoch fine-tuning (5 models per split) and 3-fold cross-fitted
target nets. One study run is shared by the module; reruns reuse its files.
The sub-pool analysis uses 10 pools instead of 100 (its cost, not its logic,
grows with the count; tests/test_evaluation_*.py cover it).
"""
import dataclasses
import json
import os
import shutil

import jax
import numpy as np
import pytest
import testlib

from transferjax import io as tio
from transferjax import study
from transferjax.data.container import Dataset
from transferjax.data.tasks import SourceTask
from transferjax.errors import CheckpointError, ConfigError
from transferjax.evaluation import report as report_lib
from transferjax.evaluation import stats as stats_lib
from transferjax.scoring import job as job_lib
from transferjax.scoring.rank import RankJob
from transferjax.train import ZooConfig, train_zoo
from transferjax.transfer import finetune as finetune_lib
from transferjax.transfer.finetune import init_params_stack
from transferjax.transfer.fit import FitConfig

METHODS = ("cmi_knn", "mi_knn", "source_n_classes", "leep")
NUM_SOURCES = 4


_pool = testlib.synthetic_pool


def _tasks(pool):
  rng = np.random.default_rng(1)
  tasks = []
  for i, k in enumerate([2, 3, 2, 4]):
    classes = np.sort(rng.choice(6, k, replace=False))
    rows = [rng.permutation(np.flatnonzero(pool.labels == c)) for c in classes]
    tasks.append(SourceTask(i, "syn", classes,
                            np.sort(np.concatenate([r[:8] for r in rows])),
                            np.sort(np.concatenate([r[8:10] for r in rows]))))
  return tasks


def _target_file(path):
  rng = np.random.default_rng(2)
  labels = np.arange(80) % 2
  images = rng.random((80, 20, 20)) * 0.6
  images[labels == 1, 5:12, 5:12] += 0.3
  np.savez(path, images=(images * 255).astype(np.uint8), labels=labels,
           class_names=np.array(["neg", "pos"]))
  return f"npz:{path}"


def _config(workdir, zoo_dir, target, **changes):
  fit = FitConfig(batch_size=8, max_epochs=2, patience=1)
  cfg = study.StudyConfig(
      workdir=str(workdir), zoo_dir=str(zoo_dir), target=target, num_labeled=24,
      num_splits=2, num_seeds=1, finetune=dataclasses.replace(fit, budgets=(1,)),
      job=RankJob(folds=3, fit=dataclasses.replace(fit, budgets=())),
      methods=METHODS)
  return dataclasses.replace(cfg, **changes)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("study")
  pool = _pool()
  train_zoo(ZooConfig(dataset="syn", num_tasks=NUM_SOURCES, max_classes=4, epochs=1,
                      batch_size=8, steps_per_call=2, chunk_size=4),
            pool, _tasks(pool), str(root / "zoo"))
  target = _target_file(str(root / "target.npz"))
  old = jax.config.read("jax_disable_most_optimizations")
  # The RNG-heavy init compiles ~5x faster unoptimized; the fine-tuning and
  # target-net epochs then run ~10x faster optimized (tests/test_finetune.py).
  for m in (5, 3):  # Models per fine-tuning call, and fold nets.
    init_params_stack("lenet20", 2, jax.random.split(jax.random.key(0), m), 20)
  jax.config.update("jax_disable_most_optimizations", False)
  real_table, real_eval = stats_lib.subpool_table, report_lib.evaluate_methods
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(stats_lib, "subpool_table",
               lambda *a, **k: real_table(*a, **{**k, "num_pools": 10}))
    mp.setattr(report_lib, "evaluate_methods", lambda *a, **k: real_eval(
        *a, **{**k, "num_pools": min(k.get("num_pools", 100), 10)}))
    cfg = _config(root / "work", root / "zoo", target)
    ev = study.run_study(cfg)
    yield {"root": root, "target": target, "cfg": cfg, "ev": ev}
  jax.config.update("jax_disable_most_optimizations", old)


def test_study_config_errors(tmp_path):
  with pytest.raises(ConfigError, match=r"Unknown ranking method\(s\) \['nope'\]"):
    study.StudyConfig(workdir=str(tmp_path), zoo_dir=str(tmp_path),
                      methods=("cmi_knn", "nope"))
  with pytest.raises(ConfigError, match="num_splits and num_seeds"):
    study.StudyConfig(workdir=str(tmp_path), zoo_dir=str(tmp_path), num_seeds=0)


def test_run_study_writes_every_file(setup):
  work = setup["root"] / "work"
  for s in (0, 1):
    assert (work / "transfer" / f"split_{s}.json").exists()
    assert (work / "scores" / f"split_{s}.json").exists()
  for name in ("transfer.csv", "transfer.json", "report.md", "evaluation.json",
               "figures/fig6_score_vs_auc.png", "figures/tau_subpools.png",
               "figures/fig7_features.png"):
    assert (work / name).stat().st_size > 0, name
  ev = json.loads((work / "evaluation.json").read_text())
  assert sorted(ev["methods"]) == sorted(METHODS)
  assert ev["num_sources"] == NUM_SOURCES
  assert ev["num_splits"] == 2 and ev["num_seeds"] == 1
  # 10 pools asked for, but only C(4, 3) = 4 distinct pools of 3 out of 4 exist.
  assert ev["subpool"]["num_pools"] == 4 and ev["subpool"]["exhaustive"]
  assert ev["answer"] and len(ev["sources"]) == NUM_SOURCES
  assert set(ev["seconds"]) == {"ground_truth", "rankings", "evaluation"}
  assert list(ev["budgets"]) == ["1_epochs"]
  for m in METHODS:
    assert set(ev["methods"][m]["per_split"]) == {"weighted_tau", "spearman"}
  report = (work / "report.md").read_text()
  for m in METHODS:
    assert m in report
  assert report.index("## Answer") < report.index("## Methods")
  assert (work / "evaluation_table.csv").exists()
  assert (work / "evaluation_table.tex").exists()
  assert "fig7_features.png" in report


def test_split_files_hold_the_documented_arrays(setup):
  work = setup["root"] / "work"
  gt = json.loads((work / "transfer" / "split_1.json").read_text())
  assert np.asarray(gt["auc"]).shape == (NUM_SOURCES, 1)
  assert np.asarray(gt["no_transfer"]).shape == (1,)
  assert np.asarray(gt["budget_auc"]["1"]).shape == (NUM_SOURCES, 1)
  assert gt["sizes"] == {"train": 20, "val": 4, "test": 56}
  assert gt["signature"]["num_seeds"] == 1
  sc = json.loads((work / "scores" / "split_1.json").read_text())
  assert sorted(sc["scores"]) == sorted(METHODS)
  assert sc["scoring_set_size"] == 24  # Cross-fitting scores all of D_a.
  np.testing.assert_array_equal(sc["scores"]["source_n_classes"], [2, 3, 2, 4])
  # Splits differ (seeded per split).
  gt0 = json.loads((work / "transfer" / "split_0.json").read_text())
  assert not np.array_equal(gt0["auc"], gt["auc"])


def _forbid(monkeypatch):
  def fail(*args, **kwargs):
    raise AssertionError("recomputed a finished split")
  monkeypatch.setattr(study, "finetune_sources", fail)
  monkeypatch.setattr(study, "score_zoo", fail)


def test_rerun_reuses_finished_splits(setup, monkeypatch):
  _forbid(monkeypatch)
  ev = study.run_study(setup["cfg"]).evaluation
  for m in METHODS:
    assert ev["methods"][m]["spearman"] == setup["ev"].evaluation["methods"][m]["spearman"]
  zoo = job_lib.open_zoo(setup["cfg"].zoo_dir)
  target = job_lib.load_target_for_zoo(setup["target"], zoo, None)
  gt = study.ground_truth(setup["cfg"], zoo, target)
  assert gt["auc"].shape == (NUM_SOURCES, 1, 2)
  assert gt["no_transfer"].shape == (1, 2)
  assert gt["budget_auc"]["1"].shape == (NUM_SOURCES, 1, 2)
  assert np.all((gt["auc"] >= 0) & (gt["auc"] <= 1))
  scores = study.rankings(setup["cfg"], zoo, target)
  assert {m: v.shape for m, v in scores.items()} == {m: (NUM_SOURCES, 2)
                                                      for m in METHODS}


def test_run_study_returns_the_typed_result_load_study_rebuilds(setup, monkeypatch):
  res = setup["ev"]
  assert isinstance(res, study.StudyResult)
  assert res.source_ids == tuple(range(NUM_SOURCES))
  assert {m: v.shape for m, v in res.scores.items()} == {m: (NUM_SOURCES, 2)
                                                          for m in METHODS}
  assert res.truth.shape == (NUM_SOURCES,) and res.diagnostic is res.evaluation["diagnostic"]
  assert os.path.exists(res.paths["report"]) and len(res.paths["figures"]) == 3
  # From the files alone (no zoo, no target, no computation), the same numbers.
  _forbid(monkeypatch)
  loaded = study.load_study(setup["cfg"])
  np.testing.assert_array_equal(loaded.ground_truth["auc"], res.ground_truth["auc"])
  for m in METHODS:
    np.testing.assert_array_equal(loaded.scores[m], res.scores[m])
  assert loaded.evaluation["methods"] == tio._to_jsonable(res.evaluation["methods"])
  assert loaded.split_seconds == res.split_seconds
  assert loaded.score_warnings == tuple(json.loads(json.dumps(res.score_warnings)))
  with pytest.raises(CheckpointError, match="is missing.*run it"):
    study.load_study(dataclasses.replace(setup["cfg"], workdir=str(setup["root"] / "no")))


def test_suite_record_from_the_result_equals_the_files(setup, monkeypatch):
  """The leaderboard record built from the typed result (fresh or loaded)
  holds the numbers the files hold (what the record was read from before)."""
  from transferjax import suites
  _forbid(monkeypatch)
  cfg, work = setup["cfg"], setup["root"] / "work"
  st = suites.Setting(zoo="z", target=setup["target"], role="test")
  gt = json.loads((work / "transfer.json").read_text())
  splits = [json.loads((work / "scores" / f"split_{s}.json").read_text()) for s in (0, 1)]
  for res in (setup["ev"], study.load_study(cfg)):
    rec = suites._read_record(st, res, 0.0, quiet=True)
    np.testing.assert_array_equal(rec["runs"], np.asarray(gt["auc"], np.float64))
    assert rec["no_transfer"] == float(np.mean(gt["no_transfer_runs"]))
    for m in METHODS:
      np.testing.assert_array_equal(
          rec["scores"][m], np.mean([np.asarray(d["scores"][m], np.float64)
                                     for d in splits], axis=0))
    assert rec["seconds"]["compute_first_run"] == round(sum(
        json.loads((work / sub / f"split_{s}.json").read_text())["seconds"]
        for sub in ("transfer", "scores") for s in (0, 1)), 1)


def test_benchmark_takes_the_typed_result(setup, monkeypatch):
  """run_benchmark's per-setting numbers come from run_study's result and equal
  what the setting's files hold (the study resumes: nothing is recomputed)."""
  from transferjax import leaderboard
  _forbid(monkeypatch)
  bench = setup["root"] / "bench"
  setting = bench / "z" / leaderboard._slug(setup["target"])
  shutil.copytree(setup["root"] / "work", setting)
  out = leaderboard.run_benchmark(leaderboard.BenchmarkConfig(
      workdir=str(bench), zoos={"z": setup["cfg"].zoo_dir}, targets=(setup["target"],),
      study=setup["cfg"], num_pools=5))
  gt = json.loads((setting / "transfer.json").read_text())
  runs = np.asarray(gt["auc"], np.float64)
  truth = runs.reshape(runs.shape[0], -1).mean(1)
  splits = [json.loads((setting / "scores" / f"split_{s}.json").read_text())
            for s in (0, 1)]
  for row in out["settings"]:
    sc = np.mean([np.asarray(d["scores"][row["method"]], np.float64) for d in splits],
                 axis=0)
    np.testing.assert_equal(row["spearman"],
                            stats_lib.rank_statistics(sc, truth)["spearman"])
  assert sorted({r["method"] for r in out["settings"]}) == sorted(METHODS)


def test_evaluate_is_statistics_only(setup, monkeypatch):
  """No fine-tuning, no scoring, no zoo inference: only the zoo's metadata."""
  res = setup["ev"]
  _forbid(monkeypatch)
  from transferjax.train import zoo as zoo_lib
  monkeypatch.setattr(zoo_lib, "zoo_features", lambda *a, **k: pytest.fail("inference"))
  zoo = job_lib.open_zoo(setup["cfg"].zoo_dir)
  ev = study.evaluate(setup["cfg"], zoo, res.ground_truth, res.scores)
  assert json.dumps(tio._to_jsonable(ev["methods"])) == json.dumps(
      tio._to_jsonable(res.evaluation["methods"]))
  assert ev["answer"] == res.evaluation["answer"]


def test_a_lost_split_is_recomputed_identically(setup, monkeypatch):
  work = setup["root"] / "work"
  copy = setup["root"] / "work_copy"
  shutil.copytree(work, copy)
  os.remove(copy / "transfer" / "split_1.json")
  shutil.rmtree(copy / "transfer" / "split_1_chunks")  # Else its chunks restore.
  os.remove(copy / "scores" / "split_1.json")
  calls = []
  for name in ("finetune_sources", "score_zoo"):
    real = getattr(study, name)

    def counted(*args, _real=real, _name=name, **kwargs):
      calls.append(_name)
      return _real(*args, **kwargs)

    monkeypatch.setattr(study, name, counted)
  cfg = dataclasses.replace(setup["cfg"], workdir=str(copy))
  zoo = job_lib.open_zoo(cfg.zoo_dir)
  target = job_lib.load_target_for_zoo(setup["target"], zoo, None)
  gt = study.ground_truth(cfg, zoo, target)
  scores = study.rankings(cfg, zoo, target)
  assert calls == ["finetune_sources", "score_zoo"]  # Split 1 only.
  for s in (0, 1):
    old = json.loads((work / "transfer" / f"split_{s}.json").read_text())
    np.testing.assert_allclose(gt["auc"][..., s], old["auc"], atol=1e-6)
    old = json.loads((work / "scores" / f"split_{s}.json").read_text())
    for m in METHODS:
      np.testing.assert_allclose(scores[m][:, s], old["scores"][m], atol=1e-6)


def test_changed_settings_are_refused(setup, monkeypatch):
  _forbid(monkeypatch)
  cfg = setup["cfg"]
  with pytest.raises(CheckpointError,
                     match=r"different settings: num_seeds: stored 1, given 2\."):
    study.run_study(dataclasses.replace(cfg, num_seeds=2))
  # The ranking job is not part of the ground truth's signature: the transfer
  # files are reused and the score files refuse.
  job = dataclasses.replace(cfg.job, folds=4)
  with pytest.raises(CheckpointError,
                     match=r"scores.*different settings: job\.folds: stored \d, given 4"):
    study.run_study(dataclasses.replace(cfg, job=job))


def test_a_lost_split_restores_its_chunks_and_refuses_stale_ones(setup, monkeypatch):
  copy = setup["root"] / "work_chunks"
  shutil.copytree(setup["root"] / "work", copy)
  os.remove(copy / "transfer" / "split_0.json")
  zoo = job_lib.open_zoo(setup["cfg"].zoo_dir)
  target = job_lib.load_target_for_zoo(setup["target"], zoo, None)
  fits = []
  real = finetune_lib.fit_models
  monkeypatch.setattr(finetune_lib, "fit_models",
                      lambda *a, **k: fits.append(1) or real(*a, **k))
  cfg = dataclasses.replace(setup["cfg"], workdir=str(copy))
  gt = study.ground_truth(cfg, zoo, target)
  assert fits == []  # Every chunk of split 0 was restored from split_0_chunks/.
  old = json.loads((setup["root"] / "work" / "transfer" / "split_0.json").read_text())
  np.testing.assert_array_equal(gt["auc"][..., 0], old["auc"])
  os.remove(copy / "transfer" / "split_0.json")
  with pytest.raises(CheckpointError,
                     match=r"split_0_chunks.*different settings: num_seeds: stored 1, given 2"):
    study.ground_truth(dataclasses.replace(cfg, num_seeds=2), zoo, target)


def test_rank_job_run_writes_ranking(setup, capsys):
  cfg = setup["cfg"]
  out_dir = setup["root"] / "rank"
  result = job_lib.run(job_lib.RankRunConfig(
      zoo=cfg.zoo_dir, target=setup["target"], workdir=str(out_dir),
      num_labeled=24, job=cfg.job))
  data = json.loads((out_dir / "ranking.json").read_text())
  assert data["method"] == "cmi_knn" and data["protocol"] == "crossfit"
  assert data["scoring_set_size"] == 24
  ranks = [r["rank"] for r in data["ranking"]]
  assert ranks == [1, 2, 3, 4]
  assert sorted(r["source_id"] for r in data["ranking"]) == [0, 1, 2, 3]
  assert data["ranking"][0]["gamma_max"] is not None
  assert (out_dir / "ranking.csv").exists()
  assert len(result["rows"]) == NUM_SOURCES
  out = capsys.readouterr().out
  assert "Ranking of 4 sources" in out
  # Uncertainty per source, the recommendation and what the numbers mean.
  top = data["ranking"][0]
  assert top["gamma_ci_low"] <= top["gamma"] <= top["gamma_ci_high"]
  assert abs(sum(r["p_first"] for r in data["ranking"]) - 1) < 1e-6
  assert data["uncertainty"]["p_top_first"] == top["p_first"]
  assert "90% interval" in out and "P(first)" in out and "negative" in out
  assert (f"Recommended: source {top['source_id']}" in out
          or "No source shows information" in out)
  assert isinstance(data["weak_sources"], list)
