r"""Leaderboard of every ranking method over several targets, zoos and sub-pools.

Command (runtimes on a 2-core CPU: BUILD_NOTES.md and docs/notes/leaderboard.md;
3 zoos x 4 targets, 2 splits x 2 seeds is about an hour)::

  python -m experiments.benchmark --workdir=runs/benchmark \
      --zoos=scenes,limited,mixed [--targets=mnist:4,9 --targets=faces ...]

A frozen suite (``transferjax/suites.py``: zoo unions whose sources differ by
construction, settings with few-shot multi-class targets, the transfer-matters
diagnostic per setting, development/confirmation split)::

  python -m experiments.benchmark --suite=testbed --workdir=runs/suite_testbed \
      --out_dir=results/benchmark/testbed

Expected result: ``leaderboard.md`` / ``leaderboard.csv`` (per method: mean and
sd of weighted Kendall tau over settings and over 100 random sub-pools of 10
sources, top-1 hit, regret), the Setup Stability score, ``settings.csv`` and
``tau_distributions.png``. Zoos are trained if missing (presets: ``scenes`` =
the mnist experiment's zoo, ``limited`` = few images per class, ``mixed`` = the
scenes zoo's flags on the mixed pool ``scenes+digits``, each task drawn from one
of the two); every setting is resumable. Every target is ranked with every zoo,
so all must be 20x20 lenet20 (the 9x9 spots target has its own spot9 zoo).
"""
import dataclasses
import os

from transferjax import cli
from absl import app, flags

from experiments import study_flags
from transferjax import paper
from transferjax.leaderboard import BenchmarkConfig, run_benchmark
from transferjax.train import zoo as zoo_lib

# name: (paper preset whose zoo it is, ZooConfig overrides).
ZOO_PRESETS = {"scenes": ("mnist", {}), "limited": ("limited", {}),
               "mixed": ("mnist", {"dataset": "scenes+digits"})}

flags.DEFINE_string("workdir", "runs/benchmark", "Output folder.")
flags.DEFINE_list("zoos", ["scenes"], f"Zoo presets {sorted(ZOO_PRESETS)} or NAME=DIR of trained zoos.")
flags.DEFINE_multi_string("targets", ["mnist:4,9", "mnist:3,5", "digits:3,8", "faces"],
                          "Target specs (20x20); repeat the flag for several.")
flags.DEFINE_integer("num_sources", 20, "Sources per preset zoo.")
flags.DEFINE_integer("zoo_epochs", 15, "Source training epochs of preset zoos.")
flags.DEFINE_integer("pool_size", 10, "Sub-pool size.")
flags.DEFINE_integer("num_pools", 100, "Random sub-pools per setting.")
flags.DEFINE_string("suite", None, "Run a frozen suite of transferjax.suites "
                    "(testbed, smoke) instead of --zoos x --targets.")
flags.DEFINE_string("out_dir", None, "Where a suite's leaderboard goes (default: workdir).")
flags.DEFINE_list("extra_methods", [], "Methods scored on top of the suite's.")
flags.DEFINE_bool("board_only", False, "With --suite: write the board from the "
                  "settings finished so far (nothing is run).")
flags.DEFINE_list("only_settings", None, "Run just these setting indices of the "
                  "suite (0-based) and write no board: to share a suite over processes.")
flags.adopt_module_key_flags(study_flags)  # listed by --helpshort
FLAGS = flags.FLAGS

ALL_METHODS = ("cmi_knn", "cmi_binned", "mi_knn", "source_train_acc", "source_n_classes",
               "linear_probe", "knn_accuracy", "leep", "nce", "h_score",
               "shrinkage_h_score", "logme", "nleep", "gbc", "transrate", "sfda", "rbm")


def run_named_suite(name: str) -> None:
  from transferjax import suites
  suite = suites.get_suite(name)
  if FLAGS.board_only:
    res = suites.board_from_files(suite, FLAGS.workdir, FLAGS.out_dir or FLAGS.workdir,
                                  partial=True)
    print(f"board of {len(res['records'])} settings; not finished: {res['missing']}")
    return
  only = (tuple(int(i) for i in FLAGS.only_settings) if FLAGS.only_settings
          else None)
  res = suites.run_suite(suite, FLAGS.workdir, FLAGS.out_dir,
                         extra_methods=tuple(FLAGS.extra_methods), only=only)
  if res is None:
    print(f"settings {list(only)} done")
    return
  for role, b in res["boards"].items():
    d = b["top_two_diff"]
    print(f"-- {role} settings: top two {b['top_two'][0]} - {b['top_two'][1]} = "
          f"{d['diff']:+.3f} (95% CI {d['lo']:+.3f}..{d['hi']:+.3f})")
    for row in b["board"][:5]:
      print(f"   {row['method']:<20} sub-pool w.tau {row['subpool_tau_mean']:+.3f} "
            f"[{row['subpool_ci_lo']:+.3f}, {row['subpool_ci_hi']:+.3f}]")
  print(f"wrote {FLAGS.out_dir or FLAGS.workdir}/leaderboard.md "
        f"({res['seconds']['total'] / 60:.1f} min)")


def main(argv):
  del argv
  if FLAGS.suite:
    run_named_suite(FLAGS.suite)
    return
  zoos = {}
  for spec in FLAGS.zoos:
    if "=" in spec:
      name, path = spec.split("=", 1)
      zoos[name] = path
      continue
    if spec not in ZOO_PRESETS:
      raise app.UsageError(f"--zoos: unknown preset {spec!r}; use {sorted(ZOO_PRESETS)} "
                           "or NAME=DIR.")
    path = os.path.join(FLAGS.workdir, "zoos", spec)
    experiment, overrides = ZOO_PRESETS[spec]
    zoo_cfg = paper.preset(experiment, FLAGS.num_sources, FLAGS.zoo_epochs).zoo
    zoo_lib.run(dataclasses.replace(zoo_cfg, **overrides), path)
    zoos[spec] = path
  overrides = {} if FLAGS["methods"].present else {"methods": ALL_METHODS}
  if not FLAGS["num_labeled"].present:
    overrides["num_labeled"] = 24
  for name in ("num_splits", "num_seeds"):
    if not FLAGS[name].present:
      overrides[name] = 2
  study = study_flags.study_config("", "", **overrides)
  res = run_benchmark(BenchmarkConfig(workdir=FLAGS.workdir, zoos=zoos,
                                      targets=tuple(FLAGS.targets), study=study,
                                      pool_size=FLAGS.pool_size,
                                      num_pools=FLAGS.num_pools))
  for row in res["leaderboard"]:
    print(f"{row['method']:<20} sub-pool w.tau {row['subpool_tau_mean']:+.3f} "
          f"+- {row['subpool_tau_sd']:.3f}   settings w.tau {row['weighted_tau_mean']:+.3f}")
  print(f"Setup Stability: {res['setup_stability']:.3f}; wrote {FLAGS.workdir}/leaderboard.md")


if __name__ == "__main__":
  app.run(cli.guard(main, verbosity="warning"))
