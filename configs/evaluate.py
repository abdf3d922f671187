"""Evaluate ranking methods against the fine-tuning ground truth
(``python -m experiments.evaluate``): the transfer config plus the Fig. 8 curve
and the evaluation of a ranking against a ground truth of your own."""
from ml_collections import config_dict

from transferjax.config import load


def get_config():
  config = load("transfer")
  config.fractions = ()  # Fig. 8 target fractions, e.g. (0.02, 0.05, 0.1)
  # CSV with columns source,score: evaluate ``ranking`` (a ranking.json) against it.
  config.ground_truth = config_dict.placeholder(str)
  config.ranking = config_dict.placeholder(str)
  return config
