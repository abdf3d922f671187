"""Choose a ranking method on a suite's development settings, confirm it on the
rest (``python -m experiments.method_search``, after the suite ran)."""
from transferjax.config import to_config


def get_config():
  return to_config(dict(
      suite="testbed",  # a suite of transferjax/suites.py
      workdir="runs/suite_testbed",  # the suite run's workdir
      out_dir="results/benchmark/testbed",
      partial=False,  # use only the settings finished so far
      # choose on dev among the pre-registered candidates, or "all" board methods
      choose_from="candidates",
  ))
