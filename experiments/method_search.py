r"""Choose a ranking method on a suite's development settings and confirm it on the rest.

Command (after ``python -m experiments.benchmark --suite=testbed``; minutes: the
estimator variants are scored from the saved scoring inputs, nothing is
fine-tuned or retrained)::

  python -m experiments.method_search --suite=testbed --workdir=runs/suite_testbed \
      --out_dir=results/benchmark/testbed

Expected result: ``method_search.md`` / ``method_search.json``: every
pre-registered candidate's development leaderboard, the chosen candidate, and
its paired bootstrap CI against every other method on the confirmation
settings (``transferjax/method_search.py`` states the protocol).
"""
import os

from absl import app, flags

from experiments import config_cli
from transferjax import cli
from transferjax import io as tio
from transferjax import method_search, suites
from transferjax.evaluation import report

config_cli.define("suite", flags.DEFINE_string, "Suite name (transferjax.suites).")
config_cli.define("out_dir", flags.DEFINE_string, "Output folder.")
config_cli.define("partial", flags.DEFINE_bool, "Use only the settings finished so far.")
config_cli.define("choose_from", flags.DEFINE_enum, "Choose on dev among the "
                  "pre-registered candidates, or among every method on the board "
                  "(outputs get a _all suffix).", enum_values=["candidates", "all"])
config_cli.use("method_search", {"suite": "suite", "workdir": "workdir",
                                 "out_dir": "out_dir", "partial": "partial",
                                 "choose_from": "choose_from"})


def main(argv):
  del argv
  cfg = config_cli.resolve()
  suite = suites.get_suite(cfg.suite)
  records = suites.load_records(suite, cfg.workdir, partial=cfg.partial)
  from transferjax.evaluation import suite_board
  suite_board.add_loo_prior(records)
  method_search.add_candidates(records, suite.num_splits)
  baselines = [m for m in list(suite.methods) + ["loo_prior"]
               if all(m in r["scores"] for r in records)]
  res = method_search.choose_and_confirm(records, baselines, pool_size=suite.pool_size,
                                         num_pools=suite.num_pools,
                                         choose_from=cfg.choose_from)
  suffix = "" if cfg.choose_from == "candidates" else "_all"
  pool_text = ("Candidates (fixed before the suite ran): "
               + ", ".join(method_search.CANDIDATES) if cfg.choose_from == "candidates"
               else "Chosen among every method on the board (the candidates "
               + ", ".join(method_search.CANDIDATES) + " and every baseline)")
  md = ["# Method search on suite `" + suite.name + "`\n",
        f"{pool_text}. Chosen on the dev settings: **{res['chosen']}**. Wins (every paired CI of its "
        f"advantage excludes 0): " + ", ".join(f"{k}: {'yes' if v else 'no'}"
                                               for k, v in res["wins"].items()) + ".\n"]
  for role in ("dev", "confirm", "all"):
    if role not in res["boards"]:
      continue
    b = res["boards"][role]
    md += [f"\n## {role} settings: {', '.join(b['settings'])}\n",
           report.leaderboard_markdown(b["board"]),
           f"\n### {res['chosen']} minus each method ({role}; paired bootstrap over "
           "settings and sub-pools)\n",
           report.leaderboard_markdown(
               [{"method": m, **c} for m, c in sorted(
                   res["comparisons"][role].items(), key=lambda kv: kv[1]["diff"])])]
  coef = records[-1].get("learned_coef", {})
  if coef:
    md += ["\n## learned_loto coefficients (fit on all dev settings)\n",
           report.leaderboard_markdown([{"member": k, "coef": v}
                                        for k, v in coef.items()])]
  os.makedirs(cfg.out_dir, exist_ok=True)
  tio.write_text(os.path.join(cfg.out_dir, f"method_search{suffix}.md"), "\n".join(md))
  tio.write_json(os.path.join(cfg.out_dir, f"method_search{suffix}.json"),
                 {k: v for k, v in res.items()})
  print("\n".join(md[:2]))
  print(f"wrote {cfg.out_dir}/method_search{suffix}.md")


if __name__ == "__main__":
  app.run(cli.guard(main, verbosity="warning"), flags_parser=config_cli.parse_flags)
