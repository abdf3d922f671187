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
``tau_distributions.png``. Zoos are trained if missing (``zoo_presets`` of
``configs/benchmark.py``: ``scenes`` = the mnist experiment's zoo, ``limited`` =
few images per class, ``mixed`` = the scenes zoo on the mixed pool
``scenes+digits``, each task drawn from one of the two); every setting is
resumable. The suite is also ``--config=configs/benchmark_testbed.py``. Every target is ranked with every zoo,
so all must be 20x20 lenet20 (the 9x9 spots target has its own spot9 zoo).
"""
from absl import app, flags

from experiments import config_cli, study_flags
from transferjax import cli
from transferjax.config import build
from transferjax.errors import ConfigError
from transferjax.leaderboard import BenchmarkConfig, run_benchmark
from transferjax.study import StudyConfig
from transferjax.train import zoo as zoo_lib

_PRESETS = ("scenes", "limited", "mixed")
config_cli.define("zoos", flags.DEFINE_list, "Zoo presets (config.zoo_presets: "
                  "scenes, limited, mixed) or NAME=DIR of trained zoos.",
                  config_cli.as_tuple)
config_cli.define("targets", flags.DEFINE_multi_string, "Target specs (20x20); repeat "
                  "the flag for several.", config_cli.as_tuple)
config_cli.define("pool_size", flags.DEFINE_integer, "Sub-pool size.")
config_cli.define("num_pools", flags.DEFINE_integer, "Random sub-pools per setting.")
config_cli.define("suite", flags.DEFINE_string, "Run a frozen suite of "
                  "transferjax.suites (testbed, smoke) instead of --zoos x --targets.")
config_cli.define("out_dir", flags.DEFINE_string, "Where a suite's leaderboard goes "
                  "(default: workdir).")
config_cli.define("extra_methods", flags.DEFINE_list, "Methods scored on top of the "
                  "suite's.", config_cli.as_tuple)
config_cli.define("board_only", flags.DEFINE_bool, "With --suite: write the board from "
                  "the settings finished so far (nothing is run).")
config_cli.define("only_settings", flags.DEFINE_list, "Run just these setting indices "
                  "of the suite (0-based) and write no board: to share a suite over "
                  "processes.", lambda v: tuple(int(i) for i in v))
config_cli.use("benchmark", {
    "workdir": "workdir", "zoos": "zoos", "targets": "targets",
    "num_sources": tuple(f"zoo_presets.{p}.num_tasks" for p in _PRESETS),
    "zoo_epochs": tuple(f"zoo_presets.{p}.epochs" for p in _PRESETS),
    "pool_size": "pool_size", "num_pools": "num_pools", "suite": "suite",
    "out_dir": "out_dir", "extra_methods": "extra_methods", "board_only": "board_only",
    "only_settings": "only_settings", **study_flags.STUDY})
FLAGS = flags.FLAGS


def run_named_suite(cfg) -> None:
  from transferjax import suites
  suite = suites.get_suite(cfg.suite)
  if cfg.board_only:
    res = suites.board_from_files(suite, cfg.workdir, cfg.out_dir or cfg.workdir,
                                  partial=True)
    print(f"board of {len(res['records'])} settings; not finished: {res['missing']}")
    return
  only = tuple(cfg.only_settings) if cfg.only_settings else None
  res = suites.run_suite(suite, cfg.workdir, cfg.out_dir,
                         extra_methods=tuple(cfg.extra_methods), only=only)
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
  print(f"wrote {cfg.out_dir or cfg.workdir}/leaderboard.md "
        f"({res['seconds']['total'] / 60:.1f} min)")


def main(argv):
  del argv
  cfg = config_cli.resolve()
  if cfg.suite:
    run_named_suite(cfg)
    return
  zoos = {}
  for spec in cfg.zoos:
    if "=" in spec:
      name, path = spec.split("=", 1)
      zoos[name] = path
      continue
    if spec not in cfg.zoo_presets:
      raise ConfigError(f"--zoos: unknown preset {spec!r}; use "
                        f"{sorted(cfg.zoo_presets)} or NAME=DIR.")
    path = f"{cfg.workdir}/zoos/{spec}"
    zoo_lib.run(build(zoo_lib.ZooConfig, cfg.zoo_presets[spec],
                      f"config.zoo_presets.{spec}"), path)
    zoos[spec] = path
  study = build(StudyConfig, cfg.study, "config.study", workdir="", zoo_dir="")
  res = run_benchmark(BenchmarkConfig(workdir=cfg.workdir, zoos=zoos,
                                      targets=tuple(cfg.targets), study=study,
                                      pool_size=cfg.pool_size, num_pools=cfg.num_pools))
  for row in res["leaderboard"]:
    print(f"{row['method']:<20} sub-pool w.tau {row['subpool_tau_mean']:+.3f} "
          f"+- {row['subpool_tau_sd']:.3f}   settings w.tau {row['weighted_tau_mean']:+.3f}")
  print(f"Setup Stability: {res['setup_stability']:.3f}; wrote {cfg.workdir}/leaderboard.md")


if __name__ == "__main__":
  app.run(cli.guard(main, verbosity="warning"), flags_parser=config_cli.parse_flags)
