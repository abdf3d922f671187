"""The paper's MNIST experiment (``python -m experiments.paper --experiment=mnist``).

Sources from the offline scenes pool (Places stand-in) at 20x20, target MNIST
4-vs-9. At the paper's 5% of the offline MNIST pair every source reaches ~0.99
AUC and the ranking cannot be judged, so |D_a| = 24 labeled images;
``--num_labeled=0 --fraction=0.05`` gives the paper's setting. ``--num_sources``
scales to the paper's 500.
"""
from transferjax.config import section, to_config
from transferjax.study import StudyConfig
from transferjax.train.zoo import ZooConfig


def get_config():
  return to_config(dict(
      workdir="runs/paper_mnist",
      zoo=ZooConfig(dataset="scenes", num_tasks=20, image_size=20, arch="lenet20",
                    epochs=15, max_per_class=50),
      study=section(StudyConfig, drop=("workdir", "zoo_dir"), target="mnist:4,9",
                    num_labeled=24, fraction=0.05),
      fractions=(),  # Fig. 8 target fractions (empty: skip)
  ))
