"""experiments.paper flags -> configs (in a subprocess: entry points define absl
flags at import, so they cannot share one process with the other entry points)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_PRINT_CONFIGS = """
import dataclasses, json, sys
from absl import flags
from experiments import paper
for argv in json.loads(sys.argv[1]):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["paper", *argv])
  zoo, study = paper.configs_from_flags()
  print(json.dumps({"zoo": dataclasses.asdict(zoo), "study": {
      k: getattr(study, k) for k in ("workdir", "zoo_dir", "target", "fraction",
                                     "num_labeled", "num_splits", "num_seeds")}}))
"""


def _configs(*argvs):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
  out = subprocess.run([sys.executable, "-c", _PRINT_CONFIGS, json.dumps(argvs)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  return [json.loads(line) for line in out.stdout.strip().splitlines()[-len(argvs):]]


def test_scale_flags_pass_through_and_defaults_stay():
  default, big, mnist = _configs(
      ["--experiment=spots"],
      ["--experiment=spots", "--num_sources=500", "--max_classes=0",
       "--max_per_class=8", "--num_splits=1", "--num_seeds=2",
       "--workdir=/tmp/tj_paper500"],
      ["--experiment=mnist", "--max_classes=7"])
  assert default["zoo"]["max_classes"] == 20  # The preset's cap is unchanged.
  assert default["zoo"]["max_per_class"] == 50
  assert default["zoo"]["num_tasks"] == 20
  assert default["study"]["target"] == "spots" and default["study"]["fraction"] == 0.1
  assert (default["study"]["num_splits"], default["study"]["num_seeds"]) == (3, 3)

  assert big["zoo"]["max_classes"] is None  # 0 = all of the pool's classes.
  assert big["zoo"]["max_per_class"] == 8
  assert big["zoo"]["num_tasks"] == 500
  assert (big["study"]["num_splits"], big["study"]["num_seeds"]) == (1, 2)
  assert big["study"]["zoo_dir"] == "/tmp/tj_paper500/zoo"
  assert big["study"]["target"] == "spots"

  assert mnist["zoo"]["max_classes"] == 7
  assert mnist["study"]["target"] == "mnist:4,9"
