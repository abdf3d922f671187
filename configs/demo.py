"""The main job (``python -m experiments.demo``): a 16-source zoo on a mixed pool,
ranked for the few-shot target MNIST 5-9, then checked against fine-tuning."""
from transferjax.config import section, to_config
from transferjax.scoring.methods import RankConfig
from transferjax.scoring.rank import RankJob
from transferjax.study import StudyConfig
from transferjax.train.zoo import ZooConfig
from transferjax.transfer.fit import FitConfig


def get_config():
  # One FitConfig: the target nets of the ranking and the fine-tuning of the
  # ground truth (study.finetune) use the same.
  fit = FitConfig(max_epochs=30, patience=5, budgets=())
  return to_config(dict(
      workdir="runs/demo",
      zoo=ZooConfig(dataset="mnist04+scenes_pool", num_tasks=16, epochs=5,
                    max_per_class=30),
      target="mnist:5,6,7,8,9",
      shots_per_class=8,
      evaluate=True,  # also fine-tune every source and evaluate the ranking
      job=RankJob(folds=4, rank=RankConfig(method="cmi_knn"), fit=fit),
      # The rest of the StudyConfig (target, shots, fit and job come from above).
      study=section(StudyConfig, drop=("workdir", "zoo_dir", "target", "shots_per_class",
                                       "finetune", "job"),
                    max_test_per_class=200, num_splits=2, num_seeds=2,
                    finetune_chunk=128,
                    methods=("cmi_knn", "mi_knn", "knn_accuracy", "source_train_acc",
                             "linear_probe", "logme", "rbm")),
  ))
