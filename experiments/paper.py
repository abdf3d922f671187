r"""The paper's experiments end to end: zoo, ground truth, rankings, report.

Commands (expected runtimes on a 2-core CPU with the defaults, 20 sources,
3 splits x 3 seeds: see BUILD_NOTES.md for the measured ones)::

  python -m experiments.paper --experiment=mnist --workdir=runs/paper_mnist
  python -m experiments.paper --experiment=spots --workdir=runs/paper_spots
  python -m experiments.paper --experiment=limited --workdir=runs/paper_limited

Expected result: ``report.md``, ``evaluation.json``, ``transfer.csv`` and
``figures/`` (Fig. 6 score vs AUC, Fig. 7 features of the best/worst-ranked
source, Fig. 8 AUC vs target fraction with ``--fractions``, sub-pool tau
distributions) in ``--workdir``; the zoo in ``<workdir>/zoo``. Every stage is
resumable. The paper's own MNIST setting: ``--num_labeled=0 --fraction=0.05``
(degenerate on this data; the report says so). Scale: ``--num_sources=500``;
the paper's task sizes (2 up to all pool classes): ``--max_classes=0``
(docs/notes/scale500.md: 500 sources on this CPU). The experiments are
``configs/paper_mnist.py``, ``paper_spots.py`` and ``paper_limited.py``
(``--experiment`` picks one; ``--config.zoo.epochs=5`` overrides any field).
"""
from absl import app, flags

from experiments import config_cli, study_flags
from transferjax import cli
from transferjax import paper
from transferjax.config import build
from transferjax.study import StudyConfig
from transferjax.train import zoo as zoo_lib

config_cli.define("experiment", flags.DEFINE_enum, "Which experiment: "
                  "configs/paper_<experiment>.py.", enum_values=list(paper.EXPERIMENTS))
config_cli.use("paper_mnist", {
    "workdir": "workdir", "num_sources": "zoo.num_tasks", "zoo_epochs": "zoo.epochs",
    "max_per_class": "zoo.max_per_class", "max_classes": "zoo.max_classes",
    "fractions": "fractions", **study_flags.STUDY},
    selectors={"experiment": lambda name: f"paper_{name}"})
FLAGS = flags.FLAGS


def _configs(cfg):
  study = build(StudyConfig, cfg.study, "config.study", workdir=cfg.workdir,
                zoo_dir=f"{cfg.workdir}/zoo")
  return build(zoo_lib.ZooConfig, cfg.zoo, "config.zoo"), study


def configs_from_flags():
  """The zoo and study configs of the parsed flags: the experiment's config file,
  then the overrides; the zoo lives in ``<workdir>/zoo``."""
  return _configs(config_cli.resolve())


def main(argv):
  del argv
  exp = FLAGS.experiment or "mnist"
  cfg = config_cli.resolve()
  zoo_cfg, study = _configs(cfg)
  ev = paper.run(zoo_cfg, study, fractions=tuple(cfg.fractions),
                 title=f"Paper experiment '{exp}': {study.target}, {zoo_cfg.num_tasks} "
                 "sources")
  from transferjax.study import summary_table
  print(summary_table(ev))
  print(f"wrote {study.workdir}/report.md and evaluation.json")


if __name__ == "__main__":
  app.run(cli.guard(main), flags_parser=config_cli.parse_flags)
