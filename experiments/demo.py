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
``--smoke`` shrinks everything to seconds (``configs/smoke.py``);
``--num_tasks=500`` scales the zoo. The settings are ``configs/demo.py``; any
field can be overridden, e.g. ``--config.zoo.num_tasks=32``.
"""
from absl import app, flags

from experiments import config_cli
from transferjax import cli
from transferjax.config import build
from transferjax.scoring.job import RankRunConfig
from transferjax.scoring.job import run as rank_run
from transferjax.scoring.rank import RankJob
from transferjax.study import StudyConfig, run_study, summary_table
from transferjax.train import zoo as zoo_lib

config_cli.define("evaluate", flags.DEFINE_bool,
                  "Also fine-tune every source and evaluate the ranking.")
config_cli.define("smoke", flags.DEFINE_bool,
                  "Tiny run (seconds): configs/smoke.py.")
config_cli.use("demo", {
    "workdir": "workdir", "num_tasks": "zoo.num_tasks", "zoo_epochs": "zoo.epochs",
    "pool": "zoo.dataset", "target": "target", "shots_per_class": "shots_per_class",
    "evaluate": "evaluate"}, selectors={"smoke": lambda on: "smoke" if on else None})


def main(argv):
  del argv
  cfg = config_cli.resolve()
  zoo_cfg = build(zoo_lib.ZooConfig, cfg.zoo, "config.zoo")
  zoo_dir = f"{cfg.workdir}/zoo"
  print(f"[1/3] zoo: {zoo_cfg.num_tasks} source CNNs on the {zoo_cfg.dataset} pool "
        f"-> {zoo_dir}")
  zoo_lib.run(zoo_cfg, zoo_dir)
  job = build(RankJob, cfg.job, "config.job")
  print(f"[2/3] ranking for {cfg.target} ({cfg.shots_per_class} labeled images "
        "per class, cross-fitted)")
  rank_run(RankRunConfig(zoo=zoo_dir, target=cfg.target, workdir=f"{cfg.workdir}/rank",
                         shots_per_class=cfg.shots_per_class, job=job))
  if not cfg.evaluate:
    return
  print("[3/3] ground truth (fine-tune every source) and evaluation")
  study = build(StudyConfig, cfg.study, "config.study", workdir=f"{cfg.workdir}/study",
                zoo_dir=zoo_dir, target=cfg.target, shots_per_class=cfg.shots_per_class,
                finetune=job.fit, job=job)
  ev = run_study(study)
  print(summary_table(ev))
  print(f"report: {study.workdir}/report.md")


if __name__ == "__main__":
  app.run(cli.guard(main, verbosity="warning"), flags_parser=config_cli.parse_flags)
