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

from experiments import selection_flags
from transferjax import cli
from transferjax.selection import select_run

flags.DEFINE_integer("k", 3, "Largest set size; sizes 2..k are compared.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  cfg = selection_flags.setting_config(tuple(range(2, max(2, FLAGS.k) + 1)))
  res = select_run.run(cfg, FLAGS.out or "results/select")
  for r in res["summary"]:
    print(f"{r['truth']:>4} k={r['k']}: oracle {r['oracle']:.4f} | greedy "
          f"{r['greedy_auc']:.4f} (regret {r['greedy_regret']:.4f}) | top-k "
          f"{r['top_k_auc']:.4f} (regret {r['top_k_regret']:.4f}) | best single "
          f"{r['best_single']:.4f} | random {r['random_k']:.4f}")
  print(f"wrote {FLAGS.out or 'results/select'}/{cfg.name}/report.md")


if __name__ == "__main__":
  app.run(cli.guard(main))
