r"""Ground truth: fine-tune every source of a zoo on a target (and the no-transfer net).

Command (expected runtime on a 2-core CPU for a 32-source zoo, 3 splits x 3
seeds: about 5-10 min)::

  python -m experiments.transfer --zoo=runs/zoo --target=mnist:4,9 --workdir=runs/gt

|D_a| defaults to the paper's 5% of the target (``--fraction``; 50 images for
mnist:4,9), as in ``experiments.rank``, ``evaluate`` and ``demo``.

Expected result: ``transfer.json`` / ``transfer.csv`` (source id, mean AUC, sd,
epochs used, fixed-budget AUCs) and ``transfer/split_S.json`` per split. A rerun
skips finished splits (resumable); other settings on the same workdir are refused.
"""
from absl import app

from experiments import config_cli, study_flags
from transferjax import cli
from transferjax.config import build
from transferjax.scoring.job import load_target_for_zoo, open_zoo
from transferjax.study import StudyConfig, ground_truth

# The ranking flags are accepted (the same flags as experiments.evaluate) but
# --helpshort lists the ground truth's only.
config_cli.use("transfer", {"zoo": "zoo", "workdir": "workdir", **study_flags.STUDY},
               key_flags=["zoo", "workdir", *study_flags.GROUND_TRUTH])


def main(argv):
  del argv
  c = config_cli.resolve()
  cfg = build(StudyConfig, c.study, "config.study", workdir=c.workdir, zoo_dir=c.zoo)
  zoo = open_zoo(cfg.zoo_dir)
  gt = ground_truth(cfg, zoo, load_target_for_zoo(cfg.target, zoo, None))
  print(f"no-transfer AUC {gt['no_transfer'].mean():.4f}; wrote "
        f"{cfg.workdir}/transfer.json and transfer.csv")


if __name__ == "__main__":
  app.run(cli.guard(main), flags_parser=config_cli.parse_flags)
