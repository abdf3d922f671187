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

from transferjax import cli
from transferjax import io as tio
from transferjax import method_search, suites
from transferjax.evaluation import report

flags.DEFINE_string("suite", "testbed", "Suite name (transferjax.suites).")
flags.DEFINE_string("workdir", "runs/suite_testbed", "The suite run's workdir.")
flags.DEFINE_string("out_dir", "results/benchmark/testbed", "Output folder.")
flags.DEFINE_bool("partial", False, "Use only the settings finished so far.")
flags.DEFINE_enum("choose_from", "candidates", ["candidates", "all"],
                  "Choose on dev among the pre-registered candidates, or among every "
                  "method on the board (outputs get a _all suffix).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  suite = suites.get_suite(FLAGS.suite)
  records = suites.load_records(suite, FLAGS.workdir, partial=FLAGS.partial)
  from transferjax.evaluation import suite_board
  suite_board.add_loo_prior(records)
  method_search.add_candidates(records, suite.num_splits)
  baselines = [m for m in list(suite.methods) + ["loo_prior"]
               if all(m in r["scores"] for r in records)]
  res = method_search.choose_and_confirm(records, baselines, pool_size=suite.pool_size,
                                         num_pools=suite.num_pools,
                                         choose_from=FLAGS.choose_from)
  suffix = "" if FLAGS.choose_from == "candidates" else "_all"
  pool_text = ("Candidates (fixed before the suite ran): "
               + ", ".join(method_search.CANDIDATES) if FLAGS.choose_from == "candidates"
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
  os.makedirs(FLAGS.out_dir, exist_ok=True)
  tio.write_text(os.path.join(FLAGS.out_dir, f"method_search{suffix}.md"), "\n".join(md))
  tio.write_json(os.path.join(FLAGS.out_dir, f"method_search{suffix}.json"),
                 {k: v for k, v in res.items()})
  print("\n".join(md[:2]))
  print(f"wrote {FLAGS.out_dir}/method_search{suffix}.md")


if __name__ == "__main__":
  app.run(cli.guard(main, verbosity="warning"))
