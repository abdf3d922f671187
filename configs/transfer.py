"""Ground truth: fine-tune every source of a zoo on a target
(``python -m experiments.transfer``); the StudyConfig defaults."""
from transferjax.config import section, to_config
from transferjax.study import StudyConfig


def get_config():
  return to_config(dict(
      zoo="runs/zoo",
      workdir="runs/gt",
      study=section(StudyConfig, drop=("workdir", "zoo_dir")),
  ))
