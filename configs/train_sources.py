"""A zoo of source CNNs (``python -m experiments.train_sources``): the ZooConfig
defaults, 32 tasks of 2-20 scene-region classes."""
from transferjax.config import to_config
from transferjax.train.zoo import ZooConfig


def get_config():
  return to_config(dict(workdir="runs/zoo", zoo=ZooConfig()))
