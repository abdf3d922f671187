r"""The main job: train a small zoo, rank it for a few-shot target, check against fine-tuning.

Command (the README's first command; offline, on the built-in data)::

  python -m experiments.demo

Expected runtime on a 2-core CPU: see BUILD_NOTES.md ("Main job"); about three
minutes. 16 source CNNs that differ by construction: each draws 2-20 classes
from one part of a mixed pool (MNIST digits 0-4 or scene regions); half are well
trained (<= 50 images per class), a quarter see <= 6 images per class, a
quarter train for one epoch. The few-shot target is faces (scikit-image's LFW
faces vs non-faces; 12 labeled images per class, test AUC), which no source saw.
The setting was chosen by the transfer-matters diagnostic alone: informative
with the default seed (best gain 9.1 SE, reliability 0.95), not yet with seeds
1-3 (reliability 0.70, 0.74, 0.70; docs/notes/demo.md). Expected result:
a top-10 ranking table of the zoo's sources by I(Y; F | T)
(``runs/demo/rank/ranking.json``), then the ground truth (every source
fine-tuned on the target, 2 splits x 3 seeds) with the transfer-matters
diagnostic (best-source gain over no transfer with its CI, spread vs noise,
split-half reliability) and the verdict line (gain in SE, reliability) beside
the evaluation table (``runs/demo/study/report.md``). Rerunning resumes and
finishes at once. ``--seed`` draws another zoo, other splits and fine-tuning
seeds; ``--smoke`` shrinks everything to seconds; ``--num_tasks=500`` scales
the zoo.
"""
import os

from transferjax import cli
from absl import app, flags

from transferjax.errors import ConfigError
from transferjax.evaluation import diagnostic
from transferjax.scoring.job import RankRunConfig
from transferjax.scoring.job import run as rank_run
from transferjax.scoring.methods import RankConfig
from transferjax.scoring.rank import RankJob
from transferjax.study import StudyConfig, run_study, summary_table
from transferjax.train import zoo as zoo_lib
from transferjax.train import zoo_union
from transferjax.transfer.fit import FitConfig

# The zoo's members: (name, share of --num_tasks, images per class, epochs or
# None for --zoo_epochs). Sources differ by construction in how much they saw
# and how long they trained, so some transfer well and some badly.
ZOO_MEMBERS = (("full", 0.5, 50, None), ("few", 0.25, 6, None), ("short", 0.25, 50, 1))

flags.DEFINE_string("workdir", "runs/demo", "Output folder.")
flags.DEFINE_integer("num_tasks", 16, "Source CNNs in the zoo (over all members).")
flags.DEFINE_integer("zoo_epochs", 10, "Training epochs of the full and few-image sources.")
flags.DEFINE_string("pool", "mnist04+scenes_pool", "Source pool (a mixed pool: each "
                    "source draws from one part).")
flags.DEFINE_string("target", "faces", "Target spec.")
flags.DEFINE_integer("shots_per_class", 12, "Labeled target images per class.")
flags.DEFINE_integer("num_splits", 2, "Target splits of the ground truth.")
flags.DEFINE_integer("num_seeds", 3, "Fine-tuning seeds per source and split.")
flags.DEFINE_integer("max_test_per_class", 200, "Test images per class (cap).")
flags.DEFINE_integer("seed", 0, "Draws the zoo's tasks, the target splits and the "
                     "fine-tuning seeds (0: the documented run).")
flags.DEFINE_bool("evaluate", True, "Also fine-tune every source and evaluate the ranking.")
flags.DEFINE_bool("smoke", False, "Tiny run (seconds): 4 tasks, 1 epoch, 1 split x 1 seed.")
FLAGS = flags.FLAGS


def member_sizes(num_tasks: int) -> list[int]:
  """Sources per member: each member's share, the first takes the rest (>= 1 each)."""
  if num_tasks < len(ZOO_MEMBERS):
    raise ConfigError(f"--num_tasks={num_tasks}: the demo's zoo has {len(ZOO_MEMBERS)} "
                      f"members ({', '.join(m[0] for m in ZOO_MEMBERS)}); use at least "
                      f"{len(ZOO_MEMBERS)}.")
  sizes = [max(1, round(num_tasks * share)) for _, share, _, _ in ZOO_MEMBERS[1:]]
  return [max(1, num_tasks - sum(sizes))] + sizes


def train_zoo(zoo_dir: str, num_tasks: int, epochs: int, max_per_class: int | None,
              seed: int) -> None:
  """Trains (or resumes) every member and writes the union at ``zoo_dir``."""
  members = []
  for i, ((name, _, per_class, member_epochs), n) in enumerate(
      zip(ZOO_MEMBERS, member_sizes(num_tasks))):
    cfg = zoo_lib.ZooConfig(dataset=FLAGS.pool, num_tasks=n, max_classes=20,
                            batch_size=32, epochs=member_epochs or epochs,
                            max_per_class=min(per_class, max_per_class or per_class),
                            seed=100 * seed + i)
    path = os.path.join(zoo_dir, name)
    zoo_lib.run(cfg, path)
    members.append((name, path))
  zoo_union.write_union(zoo_dir, members)


def main(argv):
  del argv
  smoke = FLAGS.smoke
  num_tasks = 4 if smoke else FLAGS.num_tasks
  zoo_dir = f"{FLAGS.workdir}/zoos"
  print(f"[1/3] zoo: {num_tasks} source CNNs on the {FLAGS.pool} pool "
        f"({', '.join(f'{n} {m[0]}' for m, n in zip(ZOO_MEMBERS, member_sizes(num_tasks)))})"
        f" -> {zoo_dir}")
  train_zoo(zoo_dir, num_tasks, 1 if smoke else FLAGS.zoo_epochs, 10 if smoke else None,
            FLAGS.seed)
  fit = FitConfig(max_epochs=4 if smoke else 30, patience=2 if smoke else 5, budgets=())
  job = RankJob(folds=3 if smoke else 4, rank=RankConfig(method="cmi_knn"), fit=fit)
  split_seed = 100 * FLAGS.seed
  print(f"[2/3] ranking for {FLAGS.target} ({FLAGS.shots_per_class} labeled images "
        "per class, cross-fitted)")
  rank_run(RankRunConfig(zoo=zoo_dir, target=FLAGS.target,
                         workdir=f"{FLAGS.workdir}/rank", split_seed=split_seed,
                         shots_per_class=FLAGS.shots_per_class, job=job))
  if not FLAGS.evaluate:
    return
  print("[3/3] ground truth (fine-tune every source) and evaluation")
  cfg = StudyConfig(workdir=f"{FLAGS.workdir}/study", zoo_dir=zoo_dir,
                    target=FLAGS.target, shots_per_class=FLAGS.shots_per_class,
                    max_test_per_class=FLAGS.max_test_per_class,
                    num_splits=1 if smoke else FLAGS.num_splits,
                    num_seeds=1 if smoke else FLAGS.num_seeds,
                    finetune=fit, job=job, finetune_chunk=128, seed=FLAGS.seed,
                    split_seed=split_seed,
                    methods=("cmi_knn", "mi_knn", "knn_accuracy", "source_train_acc",
                             "linear_probe", "logme"))
  ev = run_study(cfg)
  print(summary_table(ev))
  d = ev.get("diagnostic")
  if d:
    print(f"does the choice of source matter here? best-source gain {d['best_gain']:+.4f} "
          f"{ev.get('ground_truth_metric', 'AUC')} = {d['gain_to_noise_se']:.1f} SE (needs "
          f"> {diagnostic.GAIN_IN_SE:g}), ground-truth reliability {d['reliability']:.2f} "
          f"(needs >= {diagnostic.MIN_RELIABILITY:g}): "
          f"{'informative' if d['informative'] else 'NOT informative'}")
  print(f"report: {cfg.workdir}/report.md")


if __name__ == "__main__":
  app.run(cli.guard(main, verbosity="warning"))
