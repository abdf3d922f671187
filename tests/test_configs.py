"""configs/: every file loads and builds its typed configs; --config overrides reach
the run; a bad override is one clear line; outputs record how to rerun them.

Entry points run in subprocesses (they define absl flags at import).
"""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import testlib

from transferjax import config as config_lib
from transferjax import provenance as prov
from transferjax.errors import ConfigError
from transferjax.evaluation import report
from transferjax.leaderboard import BenchmarkConfig
from transferjax.scoring.rank import RankJob
from transferjax.selection.engine import SettingConfig
from transferjax.sources.stream import StreamConfig
from transferjax.study import StudyConfig
from transferjax.train.zoo import ZooConfig, train_zoo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# config name -> (section, dataclass, fields the entry point fills) it builds.
_STUDY_DIRS = {"workdir": "w", "zoo_dir": "z"}
_BUILDS = {
    "demo": [("zoo", ZooConfig, {}), ("job", RankJob, {}),
             ("study", StudyConfig, dict(_STUDY_DIRS, target="t", shots_per_class=8))],
    "paper_mnist": [("zoo", ZooConfig, {}), ("study", StudyConfig, _STUDY_DIRS)],
    "train_sources": [("zoo", ZooConfig, {})],
    "rank": [("job", RankJob, {}), ("stream", StreamConfig, {})],
    "transfer": [("study", StudyConfig, _STUDY_DIRS)],
    "evaluate": [("study", StudyConfig, _STUDY_DIRS)],
    "benchmark": [("zoo_presets.scenes", ZooConfig, {}), ("zoo_presets.limited", ZooConfig, {}),
                  ("zoo_presets.mixed", ZooConfig, {}), ("study", StudyConfig, _STUDY_DIRS)],
    "select": [("setting", SettingConfig, {})],
    "layers": [("setting", SettingConfig, {})],
}
_BUILDS["smoke"] = _BUILDS["demo"]
_BUILDS["paper_spots"] = _BUILDS["paper_limited"] = _BUILDS["paper_mnist"]
_BUILDS["train_sources_smoke"] = _BUILDS["train_sources"]
_BUILDS["benchmark_testbed"] = _BUILDS["benchmark"]


def _section(cfg, path):
  for key in path.split("."):
    cfg = cfg[key]
  return cfg


@pytest.mark.parametrize("name", [n for n in config_lib.available() if n != "recorded"])
def test_every_config_loads_and_builds_its_typed_configs(name):
  cfg = config_lib.load(name)
  json.dumps(config_lib.plain(cfg))  # recordable as JSON
  if name == "method_search":
    assert cfg.suite == "testbed"
    return
  for path, cls, extra in _BUILDS[name]:
    built = config_lib.build(cls, _section(cfg, path), f"config.{path}", **extra)
    assert isinstance(built, cls)


def test_presets_are_todays_values():
  # The values the entry points hard-coded before configs/ (outputs unchanged).
  demo = config_lib.load("demo")
  # The demo's zoo: what its union's members share (docs/notes/demo.md).
  assert (demo.zoo.num_tasks, demo.zoo.epochs, demo.zoo.max_per_class) == (16, 10, 50)
  assert (demo.job.folds, demo.job.fit.max_epochs, demo.job.fit.budgets) == (4, 30, ())
  smoke = config_lib.load("smoke")
  assert (smoke.zoo.num_tasks, smoke.job.folds, smoke.study.num_splits) == (4, 3, 1)
  spots = config_lib.build(ZooConfig, config_lib.load("paper_spots").zoo)
  assert (spots.arch, spots.image_size, spots.max_per_class) == ("spot9", 9, 50)
  assert config_lib.load("paper_spots").study.num_labeled is None
  assert config_lib.load("paper_limited").zoo.max_per_class == 8
  bench = config_lib.load("benchmark")
  assert bench.zoo_presets.mixed.dataset == "scenes+digits"
  assert len(bench.study.methods) == 17 and bench.study.num_labeled == 24
  assert config_lib.build(ZooConfig, config_lib.load("train_sources").zoo) == ZooConfig()
  ts = config_lib.load("transfer").study
  assert config_lib.build(StudyConfig, ts, **_STUDY_DIRS) == StudyConfig(**_STUDY_DIRS)
  assert isinstance(BenchmarkConfig, type)


def test_build_names_an_unknown_field_and_a_wrong_type():
  with pytest.raises(ConfigError, match=r"config.zoo.num_taskz: no such field; "
                     r"did you mean config.zoo.num_tasks\?"):
    config_lib.build(ZooConfig, {"num_taskz": 3}, "config.zoo")
  with pytest.raises(ConfigError, match=r"config.zoo.num_tasks='many': expected int"):
    config_lib.build(ZooConfig, {"num_tasks": "many"}, "config.zoo")


def _run(*args, timeout=240):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


_RESOLVE = """
import json, sys
from experiments import config_cli, demo
from transferjax.config import plain
config_cli.parse_flags(["demo", *sys.argv[1:]])
print(json.dumps(plain(config_cli.resolve())))
"""


@pytest.mark.parametrize("argv, wanted", [
    (["--config.zoo.num_tasks=32", "--config.study.num_seeds=1",
      "--config.study.methods=cmi_knn,logme"],
     {"zoo.num_tasks": 32, "study.num_seeds": 1, "zoo.epochs": 10,
      "study.methods": ["cmi_knn", "logme"]}),
    # Each case is a fresh interpreter importing JAX (~10 s): the rest are slow.
    pytest.param(["--smoke", "--config.zoo.epochs=2"],
                 {"zoo.num_tasks": 4, "zoo.epochs": 2}, marks=pytest.mark.slow),
    pytest.param(["--config=configs/smoke.py", "--config.job.rank.k=5", "--num_tasks=7",
                  "--pool=digits"],
                 {"job.rank.k": 5, "zoo.num_tasks": 7, "zoo.dataset": "digits",
                  "job.folds": 3}, marks=pytest.mark.slow),
])
def test_dotted_overrides_and_short_flags_reach_the_config(argv, wanted):
  out = _run("-c", _RESOLVE, *argv)
  assert out.returncode == 0, out.stderr[-3000:]
  cfg = json.loads(out.stdout.strip().splitlines()[-1])
  for path, value in wanted.items():
    assert _section(cfg, path) == value, path


@pytest.mark.parametrize("override, wanted", [
    ("--config.zoo.num_taskz=3", "did you mean --config.zoo.num_tasks?"),
    pytest.param("--config.zoo.num_tasks=many", "config.zoo.num_tasks is an int (now "
                 "16); give e.g. --config.zoo.num_tasks=16", marks=pytest.mark.slow),
    pytest.param("--config=configs/nosuch.py", "no such file; the experiments are",
                 marks=pytest.mark.slow),
])
def test_bad_override_is_one_line_naming_the_field(override, wanted):
  out = _run("-m", "experiments.demo", override, "--workdir=/tmp/tj_never_written")
  assert out.returncode == 2, out.stderr[-2000:]
  assert wanted in out.stderr and "Traceback" not in out.stderr
  assert len([l for l in out.stderr.splitlines() if l.strip()]) == 1, out.stderr


def test_report_has_a_reproduce_section(tmp_path):
  prov.set_run(command="python -m experiments.demo --num_tasks=8",
               config={"zoo": {"num_tasks": 8}}, spec="configs/demo.py")
  try:
    ev = {"methods": {"cmi_knn": {"weighted_tau": 0.5}}, "num_sources": 3,
          "provenance": prov.provenance({"seed": 0})}
    path = report.write_report(str(tmp_path), ev)
  finally:
    prov._RUN.clear()  # pylint: disable=protected-access
  text = open(path).read()
  section = text[text.index("## Reproduce"):]
  assert "python -m experiments.demo --num_tasks=8" in section
  assert f"--config=configs/recorded.py:{tmp_path}/evaluation.json" in section
  assert "zoo.num_tasks = 8" in section and "jax " in section and "commit" in section
  assert json.load(open(tmp_path / "evaluation.json"))["provenance"]["run"]["config"] == {
      "zoo": {"num_tasks": 8}}


def test_zoo_records_provenance(tmp_path):
  cfg = ZooConfig(dataset="syn", num_tasks=2, max_classes=3, epochs=1, batch_size=8,
                  steps_per_call=2, model_loop="map")
  pool = testlib.synthetic_pool()
  tasks = testlib.class_subset_tasks(pool, np.random.default_rng(0), [(2, 4), (3, 4)],
                                     first_id=0)
  prov.set_run(command="python -m experiments.train_sources --num_tasks=2",
               config={"zoo": {"num_tasks": 2}}, spec="configs/train_sources.py")
  try:
    train_zoo(cfg, pool, tasks, str(tmp_path), devices=jax.devices()[:1])
  finally:
    prov._RUN.clear()  # pylint: disable=protected-access
  record = json.load(open(tmp_path / "provenance.json"))
  # The resolved config: "auto" implementations resolved for this backend.
  assert record["config"]["num_tasks"] == 2 and record["config"]["conv_impl"] != "auto"
  assert record["run"]["command"].endswith("--num_tasks=2")
  assert {"jax", "jaxlib", "flax", "optax"} <= set(record["versions"])
  assert record["devices"]["count"] >= 1 and record["commit"]


@pytest.mark.slow  # trains a 2-model zoo twice in fresh interpreters (~1 min)
def test_zoo_reruns_from_its_recorded_config(tmp_path):
  workdir = str(tmp_path / "zoo")
  flags = ["--smoke", "--dataset=digits", "--config.zoo.num_tasks=2",
           "--max_classes=3", "--config.zoo.max_per_class=6", "--batch_size=8",
           "--steps_per_call=2", f"--workdir={workdir}"]
  out = _run("-m", "experiments.train_sources", *flags, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  record = json.load(open(os.path.join(workdir, "provenance.json")))
  assert record["config"]["num_tasks"] == 2 and record["config"]["max_classes"] == 3
  assert record["run"]["config"]["zoo"]["num_tasks"] == 2
  assert record["run"]["config_file"].endswith("train_sources_smoke.py")
  assert "--config.zoo.num_tasks=2" in record["run"]["command"]
  assert {"jax", "jaxlib", "flax", "optax"} <= set(record["versions"])
  assert record["devices"]["count"] >= 1 and record["commit"]
  # The recorded config alone reruns the same zoo (a resume: nothing to train).
  again = _run("-m", "experiments.train_sources",
               f"--config=configs/recorded.py:{workdir}/provenance.json", timeout=300)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "zoo of 2 models" in again.stdout
