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
from absl import app, flags

from experiments import config_cli, study_flags
from transferjax import cli
from transferjax.config import build
from transferjax.study import StudyConfig, run_study, summary_table

config_cli.define("ground_truth", flags.DEFINE_string, "CSV with columns source,score: "
                  "evaluate --ranking against it instead of running the study.")
config_cli.define("ranking", flags.DEFINE_string, "ranking.json of experiments.rank "
                  "(or its folder), for --ground_truth.")
config_cli.use("evaluate", {"zoo": "zoo", "workdir": "workdir", "fractions": "fractions",
                            "ground_truth": "ground_truth", "ranking": "ranking",
                            **study_flags.STUDY})
FLAGS = flags.FLAGS


def _evaluate_ground_truth(cfg):
  import os  # pylint: disable=g-import-not-at-top
  from transferjax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from transferjax.evaluation.ground_truth import evaluate_ranking  # pylint: disable=g-import-not-at-top
  if not cfg.ranking:
    raise ConfigError("--ground_truth needs --ranking=PATH/ranking.json (the output "
                      "of python -m experiments.rank).")
  ranking_dir = cfg.ranking if os.path.isdir(cfg.ranking) else os.path.dirname(
      os.path.abspath(cfg.ranking))
  workdir = (cfg.workdir if FLAGS["workdir"].present or "config.workdir" in FLAGS
             else os.path.join(ranking_dir, "evaluation"))
  ev = evaluate_ranking(cfg.ranking, cfg.ground_truth, workdir)
  print(f"{'method':<20} {'w.tau':>7} {'kendall':>7} {'spearman':>8} {'pearson':>8} "
        f"{'top1':>5} {'top3':>5} {'regret':>7}")
  for m, s in ev["methods"].items():
    print(f"{m:<20} {s['weighted_tau']:>7.3f} {s['kendall_tau']:>7.3f} "
          f"{s['spearman']:>8.3f} {s['pearson']:>8.3f} {s['top1_hit']:>5.2f} "
          f"{s['top3_hit']:>5.2f} {s['regret']:>7.4f}")
  print(f"wrote {workdir}/report.md and evaluation.json")


def main(argv):
  del argv
  c = config_cli.resolve()
  if c.ground_truth:
    _evaluate_ground_truth(c)
    return
  cfg = build(StudyConfig, c.study, "config.study", workdir=c.workdir, zoo_dir=c.zoo)
  ev = run_study(cfg, fractions=tuple(c.fractions))
  print(summary_table(ev))
  print(f"wrote {cfg.workdir}/report.md and evaluation.json")


if __name__ == "__main__":
  app.run(cli.guard(main), flags_parser=config_cli.parse_flags)
