"""The demo shrunk to seconds (``python -m experiments.demo --smoke``): 4 sources,
1 epoch, 10 images per class, 1 split x 1 seed."""
from transferjax.config import load


def get_config():
  config = load("demo")
  config.zoo.num_tasks = 4
  config.zoo.epochs = 1
  config.zoo.max_per_class = 10
  config.job.folds = 3
  config.job.fit.max_epochs = 4
  config.job.fit.patience = 2
  config.study.num_splits = 1
  config.study.num_seeds = 1
  return config
