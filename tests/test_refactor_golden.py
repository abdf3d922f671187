"""Golden test: the demo's ranking and evaluation give the numbers they gave before.

Runs the demo's three steps (``experiments.demo``: zoo -> ``scoring.job.run``
ranking -> ``study.run_study`` with the demo's methods, the RBM included) on
a tiny setting: 4 lenet20 sources trained one epoch on a synthetic 6-class
``npz:`` pool, a synthetic binary ``npz:`` target (|D_a| = 24), 2 splits x 1
seed of 2-epoch fine-tuning with a 1-epoch budget, 3-fold cross-fitted target
nets. Every number the run writes (the ranking, the per-split ground truth,
every method's per-split scores, the evaluation statistics, the diagnostic,
the answer) must equal ``tests/golden/demo_tiny.json`` exactly: a refactor
that changes no behaviour changes no bit.

The comparison reads the output files (the stable interface), drops what may
differ between identical runs (timings, absolute paths, provenance), and
compares the keys the golden file holds: a new output key is not a change of
numbers, a missing or different one is.

When a change of numbers is intended (a new default, a fixed bug), regenerate
the golden file deliberately and say why in the commit::

  TRANSFERJAX_UPDATE_GOLDEN=1 PYTHONPATH=$PWD python -m pytest \
      tests/test_refactor_golden.py -q -p no:xdist

(the test then writes the file and fails, so an update is never silent).
"""
import json
import math
import os

import jax
import numpy as np
import pytest
import testlib

from transferjax import study
from transferjax.evaluation import report as report_lib
from transferjax.evaluation import stats as stats_lib
from transferjax.scoring import job as job_lib
from transferjax.scoring.methods import RankConfig
from transferjax.scoring.rank import RankJob
from transferjax.train import zoo as zoo_lib
from transferjax.transfer.fit import FitConfig

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden",
                      "demo_tiny.json")
UPDATE_ENV = "TRANSFERJAX_UPDATE_GOLDEN"
# The demo's methods (experiments/demo.py).
METHODS = ("cmi_knn", "mi_knn", "knn_accuracy", "source_train_acc",
           "linear_probe", "logme", "rbm")
# What may differ between two identical runs.
VOLATILE = {"seconds", "provenance", "signature", "zoo", "workdir", "config"}


def _write_pool(path):
  pool = testlib.synthetic_pool()
  np.savez(path, images=(pool.images[..., 0] * 255).astype(np.uint8),
           labels=pool.labels, class_names=np.array(pool.class_names))
  return f"npz:{path}"


def _write_target(path):
  rng = np.random.default_rng(2)
  labels = np.arange(80) % 2
  images = rng.random((80, 20, 20)) * 0.6
  images[labels == 1, 5:12, 5:12] += 0.1  # hard enough that no score saturates
  np.savez(path, images=(images * 255).astype(np.uint8), labels=labels,
           class_names=np.array(["neg", "pos"]))
  return f"npz:{path}"


def _clean(x, root):
  """``x`` without volatile keys, the temporary root replaced by ``<root>``."""
  if isinstance(x, dict):
    return {k: _clean(v, root) for k, v in x.items() if k not in VOLATILE}
  if isinstance(x, list):
    return [_clean(v, root) for v in x]
  if isinstance(x, str):
    return x.replace(root, "<root>")
  return x


def _run_demo_tiny(root: str) -> dict:
  pool = _write_pool(os.path.join(root, "pool.npz"))
  target = _write_target(os.path.join(root, "target.npz"))
  zoo_dir = os.path.join(root, "zoo")
  zoo_lib.run(zoo_lib.ZooConfig(dataset=pool, num_tasks=4, max_classes=4,
                                max_per_class=10, epochs=1, batch_size=8,
                                steps_per_call=2, chunk_size=4), zoo_dir)
  fit = FitConfig(batch_size=8, max_epochs=2, patience=1, budgets=())
  job = RankJob(folds=3, rank=RankConfig(method="cmi_knn"), fit=fit)
  job_lib.run(job_lib.RankRunConfig(zoo=zoo_dir, target=target,
                                    workdir=os.path.join(root, "rank"),
                                    num_labeled=24, job=job))
  cfg = study.StudyConfig(
      workdir=os.path.join(root, "study"), zoo_dir=zoo_dir, target=target,
      num_labeled=24, num_splits=2, num_seeds=1,
      finetune=FitConfig(batch_size=8, max_epochs=2, patience=1, budgets=(1,)),
      job=job, methods=METHODS, rbm_hidden=8, rbm_epochs=1)
  study.run_study(cfg)
  read = lambda *p: tio_read(os.path.join(root, *p))
  out = {"ranking": read("rank", "ranking.json"),
         "evaluation": read("study", "evaluation.json")}
  for s in range(cfg.num_splits):
    out[f"transfer_split_{s}"] = read("study", "transfer", f"split_{s}.json")
    out[f"scores_split_{s}"] = read("study", "scores", f"split_{s}.json")
  return _clean(out, root)


def tio_read(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _diffs(golden, new, where="", out=None):
  """``[(path, golden value, new value)]`` where ``new`` differs (NaN == NaN;
  at the top two levels only the golden keys are compared)."""
  out = [] if out is None else out
  depth = where.count("/")
  if isinstance(golden, dict) and isinstance(new, dict):
    keys = golden if depth < 2 else sorted(set(golden) | set(new))
    for k in keys:
      if k not in new or k not in golden:
        out.append((f"{where}/{k}", golden.get(k, "<missing>"), new.get(k, "<missing>")))
      else:
        _diffs(golden[k], new[k], f"{where}/{k}", out)
  elif isinstance(golden, list) and isinstance(new, list) and len(golden) == len(new):
    for i, (a, b) in enumerate(zip(golden, new)):
      _diffs(a, b, f"{where}[{i}]", out)
  elif not (golden == new or (isinstance(golden, float) and isinstance(new, float)
                              and math.isnan(golden) and math.isnan(new))):
    out.append((where, golden, new))
  return out


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("golden"))
  old = jax.config.read("jax_disable_most_optimizations")
  # The whole run unoptimized (as tests/conftest.py sets): on these tiny
  # models compiling dominates, and this is ~35% less CPU than optimized
  # (docs/notes/pipeline.md); one setting throughout, so no number depends
  # on which compiled version a cache happens to hold.
  jax.config.update("jax_disable_most_optimizations", True)
  # As in tests/test_study.py: the sub-pool analysis' cost, not its logic,
  # grows with the pool count.
  real_table, real_eval = stats_lib.subpool_table, report_lib.evaluate_methods
  try:
    with pytest.MonkeyPatch.context() as mp:
      mp.setattr(stats_lib, "subpool_table",
                 lambda *a, **k: real_table(*a, **{**k, "num_pools": 10}))
      mp.setattr(report_lib, "evaluate_methods", lambda *a, **k: real_eval(
          *a, **{**k, "num_pools": min(k.get("num_pools", 100), 10)}))
      yield _run_demo_tiny(root)
  finally:
    jax.config.update("jax_disable_most_optimizations", old)


def test_demo_outputs_match_golden(outputs):
  if os.environ.get(UPDATE_ENV):
    os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
    with open(GOLDEN, "w", encoding="utf-8") as f:
      json.dump(outputs, f, indent=1, sort_keys=True)
      f.write("\n")
    pytest.fail(f"{UPDATE_ENV} set: wrote {GOLDEN}; unset it and rerun to check.")
  assert os.path.exists(GOLDEN), (
      f"{GOLDEN} is missing; generate it with {UPDATE_ENV}=1 (see the docstring).")
  with open(GOLDEN, encoding="utf-8") as f:
    golden = json.load(f)
  # Round-trip the new outputs through JSON too, so both sides are plain JSON.
  diffs = _diffs(golden, json.loads(json.dumps(outputs)))
  shown = "\n".join(f"  {p}: golden {str(a)[:120]}, now {str(b)[:120]}"
                    for p, a, b in diffs[:25])
  assert not diffs, (
      f"{len(diffs)} output value(s) differ from {GOLDEN}:\n{shown}\n"
      f"If the change is intended, regenerate with {UPDATE_ENV}=1 (see the docstring).")


def test_golden_covers_every_stage(outputs):
  """The golden file holds what a refactor could change: the ranking, the
  ground truth, every method's scores per split, and the statistics."""
  with open(GOLDEN, encoding="utf-8") as f:
    golden = json.load(f)
  assert len(golden["ranking"]["ranking"]) == 4
  for s in (0, 1):
    assert sorted(golden[f"scores_split_{s}"]["scores"]) == sorted(METHODS)
    assert np.asarray(golden[f"transfer_split_{s}"]["auc"]).shape == (4, 1)
  ev = golden["evaluation"]
  assert sorted(ev["methods"]) == sorted(METHODS)
  for key in ("weighted_tau", "spearman", "pearson", "top1_hit", "regret", "per_split"):
    assert key in ev["methods"]["cmi_knn"]
  assert "1_epochs" in ev["budgets"] and ev["answer"] and ev["sources"]
  # The run is not degenerate in the way that would hide changes: scores vary.
  for m in METHODS:
    assert np.unique(np.asarray(golden["scores_split_0"]["scores"][m])).size > 1, m
