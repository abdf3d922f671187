r"""Evaluate ranking methods against the fine-tuning ground truth.

Command (after ``experiments.transfer`` with the same flags; expected runtime
1-3 min for a 32-source zoo, most of it the cross-fitted target nets)::

  python -m experiments.evaluate --zoo=runs/zoo --workdir=runs/gt --target=mnist:4,9

Pass the same target and study flags as ``experiments.transfer`` (a mismatch is
refused, with the stored and the given values).

Expected result: ``report.md`` (tables and figures), ``evaluation.json`` (per
method: weighted_tau, kendall_tau, spearman, pearson, top1_hit, top3_hit,
rel_top1, regret; plus no_transfer, num_sources, ceiling) and ``figures/*.png``
in ``--workdir``. Ground truth or scores not yet computed are computed (and
saved) first.
"""
from transferjax import cli
from absl import app, flags, logging

from experiments import study_flags
from transferjax.study import run_study, summary_table

flags.DEFINE_string("zoo", "runs/zoo", "Workdir of a trained zoo.")
flags.DEFINE_string("workdir", "runs/gt", "Study folder (ground truth and outputs).")
flags.DEFINE_list("fractions", [], "Fig. 8 target fractions, e.g. 0.02,0.05,0.1 (empty: skip).")
flags.adopt_module_key_flags(study_flags)  # listed by --helpshort
FLAGS = flags.FLAGS


def main(argv):
  del argv
  cfg = study_flags.study_config(FLAGS.workdir, FLAGS.zoo)
  ev = run_study(cfg, fractions=tuple(float(f) for f in FLAGS.fractions))
  print(summary_table(ev))
  print(f"wrote {FLAGS.workdir}/report.md and evaluation.json")


if __name__ == "__main__":
  app.run(cli.guard(main))
