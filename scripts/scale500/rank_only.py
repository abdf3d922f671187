"""Scores every source with every method (study.rankings) for the experiments.paper
flags, so the ranking stage can run beside the ground truth; a later
experiments.paper run with the same flags finds scores/split_*.json and reuses it."""
from absl import app
from experiments import config_cli, paper
from transferjax.scoring.job import load_target_for_zoo, open_zoo
from transferjax.study import rankings


def main(argv):
  del argv
  _, cfg = paper.configs_from_flags()
  zoo = open_zoo(cfg.zoo_dir)
  rankings(cfg, zoo, load_target_for_zoo(cfg.target, zoo, None))
  print("rankings done")


if __name__ == "__main__":
  app.run(main, flags_parser=config_cli.parse_flags)
