r"""What each entry point hands the library, for a list of command lines; runs nothing.

For refactors of the entry points and configs: run it on two checkouts and
compare (every library ``run`` is replaced by a recorder, so each command line
takes seconds)::

  python scripts/entry_point_calls.py > after.jsonl
  (cd OTHER_CHECKOUT && PYTHONPATH=$PWD python /path/to/scripts/entry_point_calls.py) > before.jsonl
  diff before.jsonl after.jsonl

Each output line is ``{"argv": ..., "calls": [[function, args, kwargs], ...]}``
with dataclass arguments as dicts. Each command line runs in its own process
(entry points define absl flags at import).
"""
import dataclasses
import importlib
import json
import os
import subprocess
import sys

CASES = [
    "experiments.demo",
    "experiments.demo --smoke",
    "experiments.demo --num_tasks=500 --workdir=/tmp/d",
    "experiments.train_sources",
    "experiments.train_sources --num_tasks=500 --max_per_class=0 --max_classes=0 "
    "--learning_rate=0.01 --conv_impl=xla --chunk_size=8",
    "experiments.train_sources --smoke --dataset=digits",
    "experiments.paper",
    "experiments.paper --experiment=spots",
    "experiments.paper --experiment=limited --num_sources=500 --max_classes=0 "
    "--num_splits=1 --num_seeds=2 --workdir=/tmp/p",
    "experiments.paper --experiment=mnist --num_labeled=0 --fraction=0.05 "
    "--max_epochs=7 --budgets=3 --seed=4 --methods=cmi_knn,logme",
    "experiments.rank",
    "experiments.rank --zoo=runs/z --target=faces --estimator=binned --k=5 "
    "--target_max_epochs=9 --seed=2 --protocol=paper --folds=3",
    "experiments.rank --sources=zoo:runs/zoo,files:feats --target=folder:/data/pets "
    "--methods=all --workdir=runs/rank_pets --chunk_mb=10",
    "experiments.rank --method=logme --estimator=binned",
    "experiments.evaluate --zoo=runs/zoo --workdir=runs/gt --target=mnist:4,9",
    "experiments.evaluate --num_splits=1 --max_epochs=5 --patience=2 --ft_batch_size=8 "
    "--freeze_transferred --f_scale=none --fractions=0.02,0.1",
    "experiments.transfer --zoo=runs/zoo --target=mnist:4,9 --workdir=runs/gt "
    "--num_labeled=24",
    "experiments.benchmark --workdir=/tmp/b --zoos=scenes,limited,mixed",
    "experiments.benchmark --workdir=/tmp/b --zoos=scenes,x=/tmp/z --targets=mnist:4,9 "
    "--targets=faces --num_sources=8 --zoo_epochs=2 --num_labeled=10 --methods=cmi_knn",
    "experiments.select --k=3 --zoo=runs/zoo_spot9 --target=spots",
    "experiments.select --k=4 --zoo=runs/zoo_scenes --target=mnist:3,5 --num_labeled=24 "
    "--max_epochs=5 --seed=3",
    "experiments.layers --zoo=runs/zoo_scenes --target=mnist:3,5 --num_labeled=24",
]


class _Stop(Exception):
  pass


def _plain(x):
  return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else x


def capture(module_name: str, argv: list[str]) -> list:
  """The library calls of ``python -m module_name *argv``."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  import transferjax.paper as paper_lib  # pylint: disable=g-import-not-at-top
  import transferjax.selection.layers_run as layers_run  # pylint: disable=g-import-not-at-top
  import transferjax.selection.select_run as select_run  # pylint: disable=g-import-not-at-top
  import transferjax.sources.job as sources_job  # pylint: disable=g-import-not-at-top
  import transferjax.train.zoo as zoo_lib  # pylint: disable=g-import-not-at-top
  calls = []

  def recorder(name, stop):
    def record(*args, **kwargs):
      calls.append([name, [_plain(a) for a in args],
                    {k: _plain(v) for k, v in kwargs.items()}])
      if stop:
        raise _Stop()
    return record

  zoo_lib.run = recorder("zoo.run", False)
  module = importlib.import_module(module_name)
  for attr, stop in (("rank_run", False), ("run_study", False), ("summary_table", False),
                     ("run_benchmark", True), ("open_zoo", False),
                     ("load_target_for_zoo", False), ("ground_truth", True),
                     ("run", True)):
    if callable(getattr(module, attr, None)):
      setattr(module, attr, recorder(attr, stop))
  for lib in (paper_lib, select_run, layers_run, sources_job):
    lib.run = recorder(lib.__name__ + ".run", True)
  flags.FLAGS(["x", *argv])
  try:
    module.main([])
  except (_Stop, TypeError, AttributeError):  # a recorder's None used further on
    pass
  return calls


def main():
  if len(sys.argv) > 1:  # one case, in this process
    calls = capture(sys.argv[1], sys.argv[2:])
    print("CALLS=" + json.dumps(calls, default=repr, sort_keys=True))
    return
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  for case in CASES:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), *case.split()],
                         env=env, capture_output=True, text=True, check=False)
    line = next((l for l in out.stdout.splitlines() if l.startswith("CALLS=")), None)
    calls = json.loads(line[len("CALLS="):]) if line else {"error": out.stderr[-500:]}
    print(json.dumps({"argv": case, "calls": calls}, sort_keys=True))


if __name__ == "__main__":
  main()
