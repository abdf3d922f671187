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

Any ranking against a ground truth you measured yourself (a CSV with columns
``source,score``: the fine-tuned model's score per source, higher = better)::

  python -m experiments.evaluate --ranking=runs/rank/pets/ranking.json \
      --ground_truth=finetuned.csv

writes ``report.md``, ``evaluation.json`` and a score-vs-ground-truth figure
(default folder: ``<ranking folder>/evaluation``), with the same statistics and
no ceiling (one number per source cannot measure its own noise).
"""
from transferjax import cli
from absl import app, flags

from experiments import study_flags
from transferjax.study import run_study, summary_table

flags.DEFINE_string("zoo", "runs/zoo", "Workdir of a trained zoo.")
flags.DEFINE_string("workdir", "runs/gt", "Study folder (ground truth and outputs).")
flags.DEFINE_list("fractions", [], "Fig. 8 target fractions, e.g. 0.02,0.05,0.1 (empty: skip).")
flags.DEFINE_string("ground_truth", None, "CSV with columns source,score: evaluate "
                    "--ranking against it instead of running the study.")
flags.DEFINE_string("ranking", None, "ranking.json of experiments.rank (or its folder), "
                    "for --ground_truth.")
flags.adopt_module_key_flags(study_flags)  # listed by --helpshort
FLAGS = flags.FLAGS


def _evaluate_ground_truth():
  import os  # pylint: disable=g-import-not-at-top
  from transferjax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from transferjax.evaluation.ground_truth import evaluate_ranking  # pylint: disable=g-import-not-at-top
  if not FLAGS.ranking:
    raise ConfigError("--ground_truth needs --ranking=PATH/ranking.json (the output "
                      "of python -m experiments.rank).")
  ranking_dir = FLAGS.ranking if os.path.isdir(FLAGS.ranking) else os.path.dirname(
      os.path.abspath(FLAGS.ranking))
  workdir = (FLAGS.workdir if FLAGS["workdir"].present
             else os.path.join(ranking_dir, "evaluation"))
  ev = evaluate_ranking(FLAGS.ranking, FLAGS.ground_truth, workdir)
  print(f"{'method':<20} {'w.tau':>7} {'kendall':>7} {'spearman':>8} {'pearson':>8} "
        f"{'top1':>5} {'top3':>5} {'regret':>7}")
  for m, s in ev["methods"].items():
    print(f"{m:<20} {s['weighted_tau']:>7.3f} {s['kendall_tau']:>7.3f} "
          f"{s['spearman']:>8.3f} {s['pearson']:>8.3f} {s['top1_hit']:>5.2f} "
          f"{s['top3_hit']:>5.2f} {s['regret']:>7.4f}")
  print(f"wrote {workdir}/report.md and evaluation.json")


def main(argv):
  del argv
  if FLAGS.ground_truth:
    _evaluate_ground_truth()
    return
  cfg = study_flags.study_config(FLAGS.workdir, FLAGS.zoo)
  ev = run_study(cfg, fractions=tuple(float(f) for f in FLAGS.fractions))
  print(summary_table(ev))
  print(f"wrote {FLAGS.workdir}/report.md and evaluation.json")


if __name__ == "__main__":
  app.run(cli.guard(main))
