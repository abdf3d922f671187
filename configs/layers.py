"""How many layers to transfer (``python -m experiments.layers``): depths 2 and 3."""
from transferjax.config import to_config
from transferjax.selection.engine import SettingConfig


def get_config():
  return to_config(dict(
      setting=SettingConfig(zoo="runs/zoo_spot9", ks=(2, 3)),  # depths compared
      out="results/layers",  # report folder
  ))
