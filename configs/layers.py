"""How many layers to transfer (``python -m experiments.layers``): depths 2 and 3.

The same setting as ``select.py`` (its fine-tuning protocol included); only the
report folder differs, and ``ks`` means the depths compared."""
from transferjax.config import load


def get_config():
  config = load("select")
  config.out = "results/layers"  # report folder
  return config
