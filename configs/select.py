"""Choose k sources together and judge the set (``python -m experiments.select``)."""
from transferjax.config import to_config
from transferjax.scoring.rank import RankJob
from transferjax.selection.engine import SettingConfig
from transferjax.transfer.fit import FitConfig


def get_config():
  return to_config(dict(
      # No fixed-epoch budgets: selection reads only the early-stopped score (as
      # the suites do, so --reuse_finetune can read a suite's runs).
      setting=SettingConfig(zoo="runs/zoo_spot9", ks=(2, 3),  # set sizes 2..k
                            finetune=FitConfig(budgets=()),
                            job=RankJob(fit=FitConfig(budgets=()))),
      out="results/select",  # report folder
  ))
