"""The paper's spots experiment (``experiments.paper --experiment=spots``): sources
from scenes at 9x9 (``spot9``), target the SYNTHETIC MRI-spot stand-in (9x9
patches, ~5% positives) at 10% labeled."""
from transferjax.config import load


def get_config():
  config = load("paper_mnist")
  config.workdir = "runs/paper_spots"
  config.zoo.image_size = 9
  config.zoo.arch = "spot9"
  config.study.target = "spots"
  config.study.num_labeled = None
  config.study.fraction = 0.1
  return config
