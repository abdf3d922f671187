"""``experiments.train_sources --smoke``: 4 tasks, 10 images per class, 1 epoch."""
from transferjax.config import load


def get_config():
  config = load("train_sources")
  config.zoo.num_tasks = 4
  config.zoo.max_per_class = 10
  config.zoo.epochs = 1
  return config
