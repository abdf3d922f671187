r"""The main job: train a small zoo, rank it for a few-shot target, check against fine-tuning.

Command (the README's first command; offline, on the built-in data)::

  python -m experiments.demo

Expected runtime on a 2-core CPU: see BUILD_NOTES.md ("Main job"); a few
minutes. 16 source CNNs drawn from a mixed pool (MNIST digits 0-4 and scene
regions; 2-20 classes each), and the few-shot target MNIST 5-9 (5-way, 8
labeled images per class, top-1 accuracy). Measured (docs/notes/testbed.md):
best source +0.025 accuracy over no transfer (4.3 SE), but a ground-truth
reliability of 0.54 with 4 runs, so the diagnostic says "not informative".
Expected result: a top-10
ranking table of the zoo's sources by I(Y; F | T)
(``runs/demo/rank/ranking.json``), then the ground truth (every source
fine-tuned on the target, 2 splits x 2 seeds, test top-1 accuracy) with the
transfer-matters diagnostic (best-source gain over no transfer with its CI,
spread vs noise, split-half reliability) beside the evaluation table
(``runs/demo/study/report.md``). Rerunning resumes and finishes at once.
``--smoke`` shrinks everything to seconds; ``--num_tasks=500`` scales the zoo.
"""
import dataclasses

from transferjax import cli
from absl import app, flags

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
flags.DEFINE_string("pool", "mnist04+scenes_pool", "Source pool (a mixed pool: each "
                    "source draws from one part).")
flags.DEFINE_string("target", "mnist:5,6,7,8,9", "Target spec.")
flags.DEFINE_integer("shots_per_class", 8, "Labeled target images per class.")
flags.DEFINE_bool("evaluate", True, "Also fine-tune every source and evaluate the ranking.")
flags.DEFINE_bool("smoke", False, "Tiny run (seconds): 4 tasks, 1 epoch, 1 split x 1 seed.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  smoke = FLAGS.smoke
  zoo_cfg = zoo_lib.ZooConfig(dataset=FLAGS.pool,
                              num_tasks=4 if smoke else FLAGS.num_tasks,
                              epochs=1 if smoke else FLAGS.zoo_epochs,
                              max_per_class=10 if smoke else 30)
  zoo_dir = f"{FLAGS.workdir}/zoo"
  print(f"[1/3] zoo: {zoo_cfg.num_tasks} source CNNs on the {FLAGS.pool} pool -> {zoo_dir}")
  zoo_lib.run(zoo_cfg, zoo_dir)
  fit = FitConfig(max_epochs=4 if smoke else 30, patience=2 if smoke else 5, budgets=())
  job = RankJob(folds=3 if smoke else 4, rank=RankConfig(method="cmi_knn"), fit=fit)
  print(f"[2/3] ranking for {FLAGS.target} ({FLAGS.shots_per_class} labeled images "
        "per class, cross-fitted)")
  rank_run(RankRunConfig(zoo=zoo_dir, target=FLAGS.target,
                         workdir=f"{FLAGS.workdir}/rank",
                         shots_per_class=FLAGS.shots_per_class, job=job))
  if not FLAGS.evaluate:
    return
  print("[3/3] ground truth (fine-tune every source) and evaluation")
  cfg = StudyConfig(workdir=f"{FLAGS.workdir}/study", zoo_dir=zoo_dir,
                    target=FLAGS.target, shots_per_class=FLAGS.shots_per_class,
                    max_test_per_class=200,
                    num_splits=1 if smoke else 2, num_seeds=1 if smoke else 2,
                    finetune=fit, job=job, finetune_chunk=128,
                    methods=("cmi_knn", "mi_knn", "knn_accuracy", "source_train_acc",
                             "linear_probe", "logme", "rbm"))
  ev = run_study(cfg)
  print(summary_table(ev))
  print(f"report: {cfg.workdir}/report.md")


if __name__ == "__main__":
  app.run(cli.guard(main, verbosity="warning"))
