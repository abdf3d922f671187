r"""How many layers to transfer: score every (source, depth), fine-tune each.

Commands (2-core CPU, 24-source zoos; measured times in docs/notes/selection.md)::

  python -m experiments.layers --zoo=runs/zoo_spot9 --target=spots
  python -m experiments.layers --zoo=runs/zoo_scenes --target=mnist:3,5 \
      --num_labeled=24
  # A testbed setting (zoo union, few-shot multi-class target, top-1 accuracy
  # truth), reading the suite's own fine-tuning runs:
  python -m experiments.layers --zoo=runs/suite_testbed/zoos/mixed \
      --target=mnist:5,6,7,8,9 --shots_per_class=8 --max_test_per_class=200 \
      --fraction=0.05 --max_epochs=30 --patience=5 \
      --reuse_finetune=runs/suite_testbed/settings/mixed/mnist_5-6-7-8-9

Expected result: ``<out>/<zoo>__<target>/report.md``, ``layers.json``,
``layers.csv`` and ``layers.png`` (is the top-scored pair the best one, rank
correlation over all pairs, gain over transferring every conv layer), and
``<out>/summary.md``. Shares its cached fine-tuning with ``experiments.select``.
"""
from absl import app

from experiments import config_cli, selection_flags
from transferjax import cli
from transferjax.config import build
from transferjax.selection import layers_run
from transferjax.selection.engine import SettingConfig

config_cli.use("layers", selection_flags.ALIASES)


def main(argv):
  del argv
  c = config_cli.resolve()
  cfg = build(SettingConfig, c.setting, "config.setting")
  res = layers_run.run(cfg, c.out)
  for r in res["table"]:
    print(f"{r['scores']:>8}: top pair {r['top_pair']} AUC {r['top_pair_auc']:.4f} "
          f"(best {r['best_pair']} {r['best_pair_auc']:.4f}), Spearman "
          f"{r['spearman_all_pairs']:.3f}, gain over all-conv "
          f"{r['gain_over_paper']:+.4f}")
  print(f"wrote {c.out}/{cfg.name}/report.md")


if __name__ == "__main__":
  app.run(cli.guard(main), flags_parser=config_cli.parse_flags)
