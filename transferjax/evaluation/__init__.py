"""Rank statistics, ground-truth reliability, stability, reports and figures.

  stats    rank_statistics, reliability (the ceiling), subpool_stability,
           setup_stability_score (Agostinelli et al., ECCV 2022)
  report   evaluate_methods, write_report (report.md + evaluation.json),
           leaderboard_markdown
  figures  the paper's Figs. 6-10 and tau distributions (imports matplotlib,
           so it is not imported here)
"""
from transferjax.evaluation import report, stats  # noqa: F401
