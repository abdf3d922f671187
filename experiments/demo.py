r"""The main job: train a small zoo, rank it for MNIST 4-vs-9, check against fine-tuning.

Command (the README's first command; offline, on the built-in data)::

  python -m experiments.demo

Expected runtime on a 2-core CPU: see BUILD_NOTES.md ("Main job"); a few
minutes. Expected result: a top-10 ranking table of the zoo's sources by
I(Y; F | T) (``runs/demo/rank/ranking.json``), then the ground truth (every
source fine-tuned on the target) and the evaluation table with the reliability
ceiling (``runs/demo/study/report.md``). Rerunning resumes and finishes at once.
``--smoke`` shrinks everything to seconds; ``--num_tasks=500`` scales the zoo.
"""
import dataclasses

from transferjax import cli
from absl import app, flags, logging

from transferjax.data import DEFAULT_FRACTION
from transferjax.scoring.job import RankRunConfig
from transferjax.scoring.job import run as rank_run
from transferjax.scoring.methods import RankConfig
from transferjax.scoring.rank import RankJob
from transferjax.study import StudyConfig, run_study, summary_table
from transferjax.train import zoo as zoo_lib
from transferjax.transfer.fit import FitConfig

flags.DEFINE_string("workdir", "runs/demo", "Output folder.")
flags.DEFINE_integer("num_tasks", 16, "Source CNNs in the zoo.")
flags.DEFINE_integer("zoo_epochs", 5, "Source training epochs.")
flags.DEFINE_string("target", "mnist:4,9", "Target spec.")
flags.DEFINE_integer("num_labeled", None,
                     "Labeled target images |D_a| (default: the paper's 5% of the "
                     "target, transferjax.data.DEFAULT_FRACTION; 50 for mnist:4,9).")
flags.DEFINE_bool("evaluate", True, "Also fine-tune every source and evaluate the ranking.")
flags.DEFINE_bool("smoke", False, "Tiny run (seconds): 4 tasks, 1 epoch, 1 split x 1 seed.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  smoke = FLAGS.smoke
  zoo_cfg = zoo_lib.ZooConfig(num_tasks=4 if smoke else FLAGS.num_tasks,
                              epochs=1 if smoke else FLAGS.zoo_epochs,
                              max_per_class=10 if smoke else 30)
  zoo_dir = f"{FLAGS.workdir}/zoo"
  print(f"[1/3] zoo: {zoo_cfg.num_tasks} source CNNs on the scenes pool -> {zoo_dir}")
  zoo_lib.run(zoo_cfg, zoo_dir)
  fit = FitConfig(max_epochs=4 if smoke else 40, patience=2 if smoke else 8)
  job = RankJob(folds=3 if smoke else 5, rank=RankConfig(method="cmi_knn"), fit=fit)
  d_a = FLAGS.num_labeled or f"{DEFAULT_FRACTION:.0%} of the target"
  print(f"[2/3] ranking for {FLAGS.target} (|D_a| = {d_a}, cross-fitted)")
  rank_run(RankRunConfig(zoo=zoo_dir, target=FLAGS.target,
                         workdir=f"{FLAGS.workdir}/rank",
                         num_labeled=FLAGS.num_labeled, job=job))
  if not FLAGS.evaluate:
    return
  print("[3/3] ground truth (fine-tune every source) and evaluation")
  cfg = StudyConfig(workdir=f"{FLAGS.workdir}/study", zoo_dir=zoo_dir,
                    target=FLAGS.target, num_labeled=FLAGS.num_labeled,
                    num_splits=1 if smoke else 2, num_seeds=1 if smoke else 2,
                    finetune=dataclasses.replace(fit, budgets=(2,) if smoke else (5, 10)),
                    job=job, methods=("cmi_knn", "mi_knn", "source_train_acc",
                                      "linear_probe", "logme", "rbm"))
  ev = run_study(cfg)
  print(summary_table(ev))
  print(f"report: {cfg.workdir}/report.md")


if __name__ == "__main__":
  app.run(cli.guard(main, verbosity="warning"))
