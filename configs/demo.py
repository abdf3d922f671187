"""The main job (``python -m experiments.demo``): a 16-source zoo union on a mixed
pool (well-trained, few-image and one-epoch sources), ranked for the few-shot
target faces, then checked against fine-tuning (docs/notes/demo.md,
docs/notes/demo3.md)."""
from ml_collections import config_dict

from transferjax.config import section, to_config
from transferjax.scoring.methods import RankConfig
from transferjax.scoring.rank import RankJob
from transferjax.study import StudyConfig
from transferjax.train.zoo import ZooConfig
from transferjax.transfer.fit import FitConfig


def _member(share: float, seed_offset: int, max_per_class: int, epochs: int | None = None):
  # epochs None: the zoo's (zoo.epochs); max_per_class is capped by zoo.max_per_class.
  return dict(share=share, seed_offset=seed_offset, max_per_class=max_per_class,
              epochs=config_dict.placeholder(int) if epochs is None else epochs)


def get_config():
  # One FitConfig: the target nets of the ranking and the fine-tuning of the
  # ground truth (study.finetune) use the same.
  fit = FitConfig(max_epochs=30, patience=5, budgets=())
  return to_config(dict(
      workdir="runs/demo",
      # Draws the zoo's tasks (member i: zoo seed 100 * seed + seed_offset), the
      # target splits (split seed 100 * seed) and the fine-tuning seeds.
      seed=0,
      # What every member shares; num_tasks counts all members' sources, and
      # the member's seed comes from `seed` above.
      zoo=section(ZooConfig, drop=("seed",), dataset="mnist04+scenes_pool",
                  num_tasks=16, epochs=10, max_per_class=50, max_classes=20,
                  batch_size=32),
      # The union's members, ordered by seed_offset: sources that differ by
      # construction in how much they saw and how long they trained. share:
      # of zoo.num_tasks (the first member takes the rest).
      members=dict(full=_member(0.5, 0, 50), few=_member(0.25, 1, 6),
                   short=_member(0.25, 2, 50, epochs=1)),
      target="faces",
      shots_per_class=16,
      # Share of the labeled images held out for early stopping (D_v), for the
      # ranking's target nets and the fine-tuning alike: 4 of the 16 per class.
      # The default 15% would leave 2 per class, too few for early stopping to
      # mean anything (single runs stop at a noise minimum and collapse).
      val_fraction=0.25,
      evaluate=True,  # also fine-tune every source and evaluate the ranking
      job=RankJob(folds=4, rank=RankConfig(method="cmi_knn"), fit=fit),
      # The rest of the StudyConfig (target, shots, validation share, fit, job
      # and the seeds come from above). No "rbm": it trains on one source pool,
      # a union has one per member.
      study=section(StudyConfig, drop=("workdir", "zoo_dir", "target", "shots_per_class",
                                       "val_fraction", "finetune", "job", "seed",
                                       "split_seed"),
                    max_test_per_class=200, num_splits=2, num_seeds=3,
                    finetune_chunk=128,
                    methods=("cmi_knn", "mi_knn", "knn_accuracy", "source_train_acc",
                             "linear_probe", "logme")),
  ))
