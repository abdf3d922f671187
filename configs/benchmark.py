"""Leaderboard of every ranking method over zoos x targets
(``python -m experiments.benchmark --zoos=scenes,limited,mixed``).

``zoo_presets`` are the zoos a name in ``zoos`` trains when missing: ``scenes``
= the mnist paper experiment's zoo, ``limited`` = few images per class,
``mixed`` = the scenes zoo on the mixed pool ``scenes+digits``. Every target is
ranked with every zoo, so all are 20x20 lenet20.
"""
from ml_collections import config_dict

from transferjax.config import load, section, to_config
from transferjax.study import StudyConfig

ALL_METHODS = ("cmi_knn", "cmi_binned", "mi_knn", "source_train_acc", "source_n_classes",
               "linear_probe", "knn_accuracy", "leep", "nce", "h_score",
               "shrinkage_h_score", "logme", "nleep", "gbc", "transrate", "sfda", "rbm")


def get_config():
  scenes = load("paper_mnist").zoo
  limited = load("paper_limited").zoo
  mixed = load("paper_mnist").zoo
  mixed.dataset = "scenes+digits"
  return to_config(dict(
      workdir="runs/benchmark",
      # names of zoo_presets, or NAME=DIR of trained zoos
      zoos=("scenes",),
      zoo_presets=dict(scenes=scenes, limited=limited, mixed=mixed),
      targets=("mnist:4,9", "mnist:3,5", "digits:3,8", "faces"),
      pool_size=10,  # sub-pool size
      num_pools=100,  # random sub-pools per setting
      study=section(StudyConfig, drop=("workdir", "zoo_dir"), methods=ALL_METHODS,
                    num_labeled=24, num_splits=2, num_seeds=2),
      # A frozen suite of transferjax/suites.py instead of zoos x targets
      # (configs/benchmark_testbed.py); the suite defines its own settings.
      suite=config_dict.placeholder(str),
      out_dir=config_dict.placeholder(str),  # a suite's board (default: workdir)
      extra_methods=(),  # methods scored on top of the suite's
      board_only=False,  # write the board from the settings finished so far
      # run just these setting indices (0-based) and write no board
      only_settings=config_dict.placeholder(tuple),
  ))
