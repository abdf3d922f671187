"""The paper's experiments end to end: zoo, then the whole study.

The experiments themselves (zoo, target and study settings) are config files:
``configs/paper_mnist.py``, ``configs/paper_spots.py`` and
``configs/paper_limited.py``.
"""
from __future__ import annotations

from transferjax.io import check_output_dir
from transferjax.study import StudyConfig, StudyResult, run_study
from transferjax.train import zoo as zoo_lib

EXPERIMENTS = ("mnist", "spots", "limited")


def run(zoo_cfg: zoo_lib.ZooConfig, study: StudyConfig, *,
        fractions: tuple[float, ...] = (), title: str = "") -> StudyResult:
  """Trains (or resumes) the zoo in ``study.zoo_dir``, then runs the whole study."""
  check_output_dir(study.workdir)
  zoo_lib.run(zoo_cfg, study.zoo_dir)
  return run_study(study, fractions=fractions, title=title or None)
