"""Choose k sources together and judge the set (``python -m experiments.select``)."""
from transferjax.config import to_config
from transferjax.selection.engine import SettingConfig


def get_config():
  return to_config(dict(
      setting=SettingConfig(zoo="runs/zoo_spot9", ks=(2, 3)),  # set sizes 2..k
      out="results/select",  # report folder
  ))
