"""The frozen testbed suite (``transferjax/suites.py`` defines it: zoo unions,
few-shot multi-class targets, development/confirmation split)::

  python -m experiments.benchmark --config=configs/benchmark_testbed.py
"""
from transferjax.config import load


def get_config():
  config = load("benchmark")
  config.suite = "testbed"
  config.workdir = "runs/suite_testbed"
  config.out_dir = "results/benchmark/testbed"
  return config
