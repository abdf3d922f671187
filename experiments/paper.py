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
(docs/notes/scale500.md: 500 sources on this CPU).
"""
import dataclasses

from transferjax import cli
from absl import app, flags

from experiments import study_flags
from transferjax import paper

flags.DEFINE_enum("experiment", "mnist", paper.EXPERIMENTS, "Which experiment.")
flags.DEFINE_string("workdir", None, "Output folder (default runs/paper_<experiment>).")
flags.DEFINE_integer("num_sources", 20, "Source CNNs in the zoo (the paper: 10 and 500).")
flags.DEFINE_integer("zoo_epochs", 15, "Source training epochs (the paper: 15).")
flags.DEFINE_integer("max_per_class", None, "Override the preset's source images per class.")
flags.DEFINE_integer("max_classes", None,
                     "Override the preset's most classes per source task (0: all of "
                     "the pool's, the paper's task sizes; scenes has 171).")
flags.DEFINE_list("fractions", [], "Fig. 8 target fractions, e.g. 0.02,0.05,0.1.")
flags.adopt_module_key_flags(study_flags)  # listed by --helpshort
FLAGS = flags.FLAGS


def configs_from_flags():
  """The zoo and study configs of the parsed flags: the preset, then overrides."""
  exp = FLAGS.experiment
  workdir = FLAGS.workdir or f"runs/paper_{exp}"
  p = paper.preset(exp, FLAGS.num_sources, FLAGS.zoo_epochs)
  zoo_cfg = p.zoo
  if FLAGS.max_per_class is not None:
    zoo_cfg = dataclasses.replace(zoo_cfg, max_per_class=FLAGS.max_per_class or None)
  if FLAGS.max_classes is not None:
    zoo_cfg = dataclasses.replace(zoo_cfg, max_classes=FLAGS.max_classes or None)
  # The preset's target settings apply unless the flag was given explicitly.
  overrides = {name: value for name, value in (
      ("target", p.target), ("num_labeled", p.num_labeled), ("fraction", p.fraction))
      if not FLAGS[name].present}
  return zoo_cfg, study_flags.study_config(workdir, f"{workdir}/zoo", **overrides)


def main(argv):
  del argv
  exp = FLAGS.experiment
  zoo_cfg, cfg = configs_from_flags()
  workdir = cfg.workdir
  ev = paper.run(zoo_cfg, cfg, fractions=tuple(float(f) for f in FLAGS.fractions),
                 title=f"Paper experiment '{exp}': {cfg.target}, {FLAGS.num_sources} sources")
  from transferjax.study import summary_table
  print(summary_table(ev))
  print(f"wrote {workdir}/report.md and evaluation.json")


if __name__ == "__main__":
  app.run(cli.guard(main))
