r"""Choose k sources together (greedy by conditional gain) and judge the set.

Commands (2-core CPU, 24-source zoos; measured times in docs/notes/selection.md)::

  python -m experiments.select --k=3 --zoo=runs/zoo_spot9 --target=spots
  python -m experiments.select --k=3 --zoo=runs/zoo_scenes --target=mnist:3,5 \
      --num_labeled=24
  # A testbed setting (zoo union, few-shot multi-class target, top-1 accuracy
  # truth), reading the suite's own fine-tuning runs:
  python -m experiments.select --k=3 --zoo=runs/suite_testbed/zoos/mixed \
      --target=mnist:5,6,7,8,9 --shots_per_class=8 --max_test_per_class=200 \
      --fraction=0.05 --max_epochs=30 --patience=5 \
      --reuse_finetune=runs/suite_testbed/settings/mixed/mnist_5-6-7-8-9

Expected result: ``<out>/<zoo>__<target>/report.md``, ``select.json``,
``select.csv`` and ``select.png`` (greedy set vs top-k vs best single source vs
the oracle subset, for k = 2..--k, under two set ground truths), and
``<out>/summary.md`` over every setting run so far. Stages are cached per
split in ``--cache``: rerun the same command to resume.
"""
from absl import app, flags

from experiments import config_cli, selection_flags
from transferjax import cli
from transferjax.config import build
from transferjax.selection import select_run
from transferjax.selection.engine import SettingConfig

config_cli.define("k", flags.DEFINE_integer, "Largest set size; sizes 2..k are "
                  "compared.", lambda k: tuple(range(2, max(2, k) + 1)))
config_cli.use("select", {**selection_flags.ALIASES, "k": "setting.ks"})


def main(argv):
  del argv
  c = config_cli.resolve()
  cfg = build(SettingConfig, c.setting, "config.setting")
  res = select_run.run(cfg, c.out)
  for r in res["summary"]:
    print(f"{r['truth']:>4} k={r['k']}: oracle {r['oracle']:.4f} | greedy "
          f"{r['greedy_auc']:.4f} (regret {r['greedy_regret']:.4f}) | top-k "
          f"{r['top_k_auc']:.4f} (regret {r['top_k_regret']:.4f}) | best single "
          f"{r['best_single']:.4f} | random {r['random_k']:.4f}")
  print(f"wrote {c.out}/{cfg.name}/report.md")


if __name__ == "__main__":
  app.run(cli.guard(main), flags_parser=config_cli.parse_flags)
