"""The paper's limited-data experiment (``experiments.paper --experiment=limited``):
sources trained on few images per class (CalTech-256 "limited data"), target
MNIST 4-vs-9."""
from transferjax.config import load


def get_config():
  config = load("paper_mnist")
  config.workdir = "runs/paper_limited"
  config.zoo.max_per_class = 8
  return config
