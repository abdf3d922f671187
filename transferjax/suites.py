"""Frozen benchmark suites: zoos whose sources differ by construction, and settings.

A suite is a committed config: zoo unions (``train.zoo_union``: members that
differ in pool, images per class and training length), settings (a zoo, a
target, how much of the target is labeled, and whether the setting is for
*development* of a method or for *confirming* it), the fine-tuning protocol and
the methods. ``run_suite`` trains every zoo, runs every setting with
``study.run_study`` (resumable per split) and writes the leaderboard
(``suite_leaderboard``).

The split into development and confirmation settings is part of the frozen
config, fixed before any result was seen: a method is chosen on the ``dev``
settings and reported on the ``confirm`` settings, which were not used to
choose it.
"""
from __future__ import annotations

import dataclasses
import os
import time

from transferjax.provenance import provenance
from transferjax.errors import ConfigError
from transferjax.train import zoo as zoo_lib
from transferjax.train import zoo_union
from transferjax.transfer.fit import FitConfig

ROLES = ("dev", "confirm")


@dataclasses.dataclass(frozen=True)
class ZooSpec:
  """A zoo union: ``members`` are ``(name, ZooConfig)`` trained one by one."""
  name: str
  members: tuple[tuple[str, zoo_lib.ZooConfig], ...]

  @property
  def num_sources(self) -> int:
    return sum(c.num_tasks for _, c in self.members)


@dataclasses.dataclass(frozen=True)
class Setting:
  """One (zoo, target) pair of a suite and its labeled-data budget."""
  zoo: str
  target: str
  role: str
  shots_per_class: int | None = None
  num_labeled: int | None = None
  fraction: float = 0.05
  max_test_per_class: int | None = 200

  @property
  def slug(self) -> str:
    return f"{self.zoo}/{self.target.replace(':', '_').replace(',', '-')}"


@dataclasses.dataclass(frozen=True)
class Suite:
  """A named, frozen benchmark suite."""
  name: str
  description: str
  zoos: tuple[ZooSpec, ...]
  settings: tuple[Setting, ...]
  num_splits: int = 2
  num_seeds: int = 2
  finetune: FitConfig = FitConfig(max_epochs=30, patience=5, budgets=())
  finetune_chunk: int = 128
  methods: tuple[str, ...] = ()
  pool_size: int = 10
  num_pools: int = 100

  def __post_init__(self):
    names = {z.name for z in self.zoos}
    for s in self.settings:
      if s.zoo not in names:
        raise ConfigError(f"Suite {self.name}: setting {s.target} names zoo {s.zoo!r}, "
                          f"not one of {sorted(names)}.")
      if s.role not in ROLES:
        raise ConfigError(f"Suite {self.name}: role {s.role!r} not in {ROLES}.")


# Ranking methods of the suites: the paper's CMI and its unconditioned form, the
# priors a claim must beat, the probes and every modern metric.
SUITE_METHODS = ("cmi_knn", "mi_knn", "cmi_binned", "source_train_acc",
                 "source_n_classes", "source_n_images", "linear_probe", "knn_accuracy",
                 "leep", "nce", "h_score", "shrinkage_h_score", "logme", "nleep", "gbc",
                 "transrate", "sfda")


def _varied(name: str, dataset: str, *, arch: str = "lenet20", image_size: int = 20,
            sizes=(16, 12, 12), seed: int = 100) -> ZooSpec:
  """Three members that differ in what makes a source good or bad:

  * ``full``: up to 50 images per class, 15 epochs (well trained);
  * ``few``: up to 6 images per class, 15 epochs (the limited-data regime);
  * ``short``: up to 50 images per class, 1 epoch (under-trained).

  Every member draws 2-20 classes per task, so class counts vary too.
  """
  base = zoo_lib.ZooConfig(dataset=dataset, arch=arch, image_size=image_size,
                           max_classes=20, batch_size=32)
  return ZooSpec(name, (
      ("full", dataclasses.replace(base, num_tasks=sizes[0], max_per_class=50,
                                   epochs=15, seed=seed)),
      ("few", dataclasses.replace(base, num_tasks=sizes[1], max_per_class=6,
                                  epochs=15, seed=seed + 1)),
      ("short", dataclasses.replace(base, num_tasks=sizes[2], max_per_class=50,
                                    epochs=1, seed=seed + 2)),
  ))


_TESTBED_ZOOS = (
    _varied("scenes", "scenes_pool"),
    _varied("mixed", "scenes_pool+mnist04+digits"),
    _varied("spot", "scenes", arch="spot9", image_size=9),
)
# Fixed before any result was seen: method development on MNIST 5-way and faces,
# confirmation on the held-out scene regions and spots (targets the choice of
# method never saw).
_TESTBED_SETTINGS = (
    Setting("scenes", "mnist:5,6,7,8,9", "dev", shots_per_class=8),
    Setting("mixed", "mnist:5,6,7,8,9", "dev", shots_per_class=8),
    Setting("scenes", "faces", "dev", num_labeled=24),
    Setting("mixed", "faces", "dev", num_labeled=24),
    Setting("scenes", "scenes_heldout", "confirm", shots_per_class=8),
    Setting("mixed", "scenes_heldout", "confirm", shots_per_class=8),
    Setting("spot", "spots", "confirm", fraction=0.04, max_test_per_class=1000),
    # Added with the second version (more runs per source), roles by zoo fixed
    # before their results: the 10-way digits, out of the scenes zoo's pool
    # (dev) and inside the mixed zoo's pool (confirm).
    Setting("scenes", "digits", "dev", shots_per_class=8),
    Setting("mixed", "digits", "confirm", shots_per_class=8),
)

SUITES = {
    "testbed": Suite(
        "testbed",
        "3 zoo unions of 40 sources (scenes / scenes+MNIST 0-4+digits / 9x9 "
        "scenes), 9 settings: MNIST 5-9 (5-way), digits (10-way) and held-out "
        "scene regions (12-way), 8 shots per class; faces (24 labeled); spots "
        "(4% labeled). 6 splits x 3 fine-tuning seeds: 18 runs per source, so "
        "the ground truth's split-half reliability can reach 0.8 where the "
        "order of sources depends on which images are labeled.",
        _TESTBED_ZOOS, _TESTBED_SETTINGS, methods=SUITE_METHODS,
        num_splits=6, num_seeds=3),
    # Seconds-long version of the same code path (tests, --smoke).
    "smoke": Suite(
        "smoke", "tiny: 2 zoos of 6 sources, 2 settings",
        (_varied("scenes", "scenes_pool", sizes=(2, 2, 2)),
         _varied("spot", "scenes", arch="spot9", image_size=9, sizes=(2, 2, 2))),
        (Setting("scenes", "mnist:5,6,7", "dev", shots_per_class=6,
                 max_test_per_class=20),
         Setting("spot", "spots", "confirm", fraction=0.04, max_test_per_class=100)),
        finetune=FitConfig(max_epochs=3, patience=2, budgets=()),
        methods=("cmi_knn", "mi_knn", "source_n_classes", "leep"), num_pools=10,
        pool_size=4),
}


def get_suite(name: str) -> Suite:
  if name not in SUITES:
    raise ConfigError(f"Unknown suite {name!r}; choose one of {sorted(SUITES)}.")
  return SUITES[name]


def train_zoos(suite: Suite, workdir: str, *, only: str | None = None) -> dict:
  """Trains (or resumes) every member zoo (or just zoo ``only``); returns
  ``{zoo name: union dir}``."""
  out = {}
  for spec in suite.zoos:
    if only is not None and spec.name != only:
      continue
    union_dir = os.path.join(workdir, "zoos", spec.name)
    members = []
    for member, cfg in spec.members:
      path = os.path.join(union_dir, member)
      t0 = time.time()
      zoo_lib.run(cfg, path)
      print(f"zoo {spec.name}/{member}: {cfg.num_tasks} sources ready "
            f"({time.time() - t0:.0f}s)", flush=True)
      members.append((member, path))
    zoo_union.write_union(union_dir, members)
    out[spec.name] = union_dir
  return out


def _setting_record(suite: Suite, st: Setting, zoo_dir: str, workdir: str,
                    methods: tuple[str, ...]) -> dict:
  """Runs (or resumes) one setting; returns its leaderboard record."""
  from transferjax import io as tio
  from transferjax.study import load_study, run_study
  cfg = _study_config(suite, st, zoo_dir, workdir, methods)
  t0 = time.time()
  done = os.path.join(cfg.workdir, "evaluation.json")
  # A finished setting (maybe by another process) is read, not re-evaluated,
  # when it already has every method and every run; run_study would check the
  # same files (and adds only the missing splits when the suite grew).
  if os.path.exists(done):
    ev = tio.read_json(done)
    if (set(methods) <= set(ev.get("methods", {}))
        and ev.get("num_splits") == suite.num_splits
        and ev.get("num_seeds") == suite.num_seeds):
      return _read_record(st, load_study(cfg), t0)
  return _read_record(st, run_study(cfg), t0)


def _study_config(suite: Suite, st: Setting, zoo_dir: str, workdir: str,
                  methods: tuple[str, ...]):
  from transferjax.study import StudyConfig
  return StudyConfig(workdir=os.path.join(workdir, "settings", st.slug), zoo_dir=zoo_dir,
                     target=st.target, fraction=st.fraction, num_labeled=st.num_labeled,
                     shots_per_class=st.shots_per_class,
                     max_test_per_class=st.max_test_per_class,
                     num_splits=suite.num_splits, num_seeds=suite.num_seeds,
                     finetune=suite.finetune, methods=methods,
                     finetune_chunk=suite.finetune_chunk)


def load_records(suite: Suite, workdir: str, *, partial: bool = False) -> list[dict]:
  """The records of a finished suite run, read from its files (nothing rerun);
  ``partial``: skip settings that have not finished yet."""
  from transferjax.study import load_study
  out = []
  for st in suite.settings:
    cfg = _study_config(suite, st, os.path.join(workdir, "zoos", st.zoo), workdir,
                        suite.methods)
    if partial and not os.path.exists(os.path.join(cfg.workdir, "evaluation.json")):
      continue
    out.append(_read_record(st, load_study(cfg), time.time(), quiet=True))
  return out


def _read_record(st: Setting, result, t0: float, quiet: bool = False) -> dict:
  """The leaderboard record of one setting from its ``study.StudyResult``."""
  import numpy as np
  from transferjax.evaluation import diagnostic, stats
  ev = result.evaluation
  runs = result.ground_truth["auc"]
  seconds = {"wall": round(time.time() - t0, 1), **(ev.get("seconds") or {})}
  seconds["compute_first_run"] = result.split_seconds
  if not quiet:
    print(f"   {st.target}@{st.zoo} ({st.role}): " + diagnostic.format_line(
        ev["diagnostic"], ev["ground_truth_metric"]), flush=True)
  return {"zoo": st.zoo, "target": st.target, "role": st.role,
          "metric": ev["ground_truth_metric"], "runs": runs,
          "truth": result.truth,
          "no_transfer": float(np.mean(result.ground_truth["no_transfer"])),
          "scores": result.mean_scores,
          "diagnostic": ev["diagnostic"],
          "reliability_splits": stats.split_level_reliability(
              np.asarray(runs, np.float64))["spearman_brown"],
          "ceiling_weighted_tau": (ev.get("ceiling") or {}).get("weighted_tau"),
          "workdir": result.config.workdir, "seconds": seconds}


def run_suite(suite: Suite, workdir: str, out_dir: str | None = None, *,
              extra_methods: tuple[str, ...] = (),
              only: tuple[int, ...] | None = None) -> dict | None:
  """Trains the zoos, runs every setting (resumable), writes the leaderboard.

  Args:
    suite: the frozen suite.
    workdir: zoos and per-setting studies (large; resumable).
    out_dir: where the leaderboard files go (default ``workdir``).
    extra_methods: methods scored on top of ``suite.methods`` (a changed list
      re-scores, but never re-fine-tunes).
    only: run just these setting indices and return None (several processes
      can share a suite's settings; a run without ``only`` then writes the board
      from their files).

  Returns:
    The ``suite_board.leaderboard`` result plus ``records`` and ``seconds``.
  """
  from transferjax.evaluation import suite_board
  t0 = time.time()
  out_dir = out_dir or workdir
  zoos, t_zoo = {}, 0.0
  methods = tuple(suite.methods) + tuple(m for m in extra_methods
                                         if m not in suite.methods)
  records = []
  order = range(len(suite.settings)) if only is None else only
  for i in order:
    st = suite.settings[i]
    print(f"== setting {i + 1}/{len(suite.settings)}: {st.target} with zoo {st.zoo} "
          f"({st.role}), {time.time() - t0:.0f}s so far", flush=True)
    if st.zoo not in zoos:   # each zoo is trained (or resumed) when first needed
      t1 = time.time()
      zoos.update(train_zoos(suite, workdir, only=st.zoo))
      t_zoo += time.time() - t1
    records.append(_setting_record(suite, st, zoos[st.zoo], workdir, methods))
  if only is not None:
    return None
  suite_board.add_loo_prior(records)
  all_methods = [m for m in methods + ("loo_prior",)
                 if all(m in r["scores"] for r in records)]
  result = suite_board.leaderboard(records, all_methods, pool_size=suite.pool_size,
                                   num_pools=suite.num_pools)
  result["seconds"] = {"total": round(time.time() - t0, 1), "zoos": round(t_zoo, 1),
                       "settings": {f"{r['target']}@{r['zoo']}": r["seconds"]
                                    for r in records}}
  write_suite_outputs(suite, records, result, out_dir)
  result["records"] = records
  return result


def write_suite_outputs(suite: Suite, records: list[dict], result: dict,
                        out_dir: str) -> None:
  """leaderboard.md/.csv, settings.csv (diagnostics), suite.json and figures."""
  from transferjax import io as tio
  from transferjax.evaluation import diagnostic, report, suite_board
  os.makedirs(out_dir, exist_ok=True)
  diag_rows = []
  for r in records:
    d = r["diagnostic"]
    diag_rows.append({
        "zoo": r["zoo"], "target": r["target"], "role": r["role"],
        "metric": r["metric"], "sources": len(r["truth"]),
        "no_transfer": d["no_transfer_mean"], "best_gain": d["best_gain"],
        "best_gain_ci_lo": d["best_gain_ci"][0], "best_gain_ci_hi": d["best_gain_ci"][1],
        "best_gain_heldout": d["best_gain_heldout"], "worst_gain": d["worst_gain"],
        "positive": d["num_positive"], "negative": d["num_negative"],
        "spread": d["spread"], "noise_se": d["noise_se"],
        "gain_in_se": d["gain_to_noise_se"], "spread_in_se": d["spread_to_noise_se"],
        "split_half": d["split_half"], "reliability": d["reliability"],
        "informative": d["informative"],
        "reliability_splits": r.get("reliability_splits", float("nan")),
        "informative_splits": diagnostic.is_informative(
            d["best_gain"], d["noise_se"], r.get("reliability_splits", float("nan"))),
        "ceiling_weighted_tau": r["ceiling_weighted_tau"],
        "minutes": round(r["seconds"].get("compute_first_run", 0.0) / 60, 1)})
  tio.write_csv(os.path.join(out_dir, "settings.csv"), diag_rows)
  tio.write_csv(os.path.join(out_dir, "per_setting.csv"), result["rows"])
  figs = []
  md = [f"# Benchmark suite `{suite.name}`\n", suite.description + "\n",
        f"{suite.num_splits} splits x {suite.num_seeds} fine-tuning seeds per setting; "
        f"sub-pools: {suite.num_pools} x {suite.pool_size} sources. Time: "
        f"{result['seconds']['total'] / 60:.1f} min (zoos "
        f"{result['seconds']['zoos'] / 60:.1f} min; a board from files sums the "
        "settings' split times).\n",
        (f"**Not finished, so not on this board: {', '.join(result['missing'])}.**\n"
         if result.get("missing") else ""),
        "## Transfer-matters diagnostic per setting\n",
        "Informative: best-source gain > 2 SE of a source's mean and Spearman-Brown "
        "split-half reliability >= 0.8 (halves of the runs). "
        "`reliability_splits` / `informative_splits`: the same with halves of "
        "the *splits* (all seeds of a split in one half), the stricter check that "
        "the order of sources holds on another draw of the labeled images. Gains "
        "are in the ground-truth metric (AUC for binary targets, top-1 accuracy "
        "for multi-class ones).\n",
        report.leaderboard_markdown(diag_rows)]
  for role, b in result["boards"].items():
    d = b["top_two_diff"]
    tio.write_csv(os.path.join(out_dir, f"leaderboard_{role}.csv"), b["board"])
    figs.append(suite_board.plot_leaderboard(
        b["board"], os.path.join(out_dir, f"leaderboard_{role}.png"),
        title=f"suite {suite.name}, {role} settings ({len(b['settings'])})"))
    md += [f"\n## Leaderboard: {role} settings ({len(b['settings'])})\n",
           f"Top two: **{b['top_two'][0]}** - {b['top_two'][1]} = {d['diff']:+.3f} "
           f"(paired bootstrap over settings and sub-pools, 95% CI {d['lo']:+.3f}.."
           f"{d['hi']:+.3f}; share <= 0: {d['p_le_0']:.3f}).\n",
           report.leaderboard_markdown(b["board"]),
           f"\n![leaderboard {role}](leaderboard_{role}.png)\n"]
  figs.append(suite_board.plot_gain_vs_spread(
      records, os.path.join(out_dir, "gain_vs_spread.png")))
  md += ["\n![gain vs spread](gain_vs_spread.png)\n",
         "\n## Per setting and method\n", "`per_setting.csv`.\n"]
  tio.write_text(os.path.join(out_dir, "leaderboard.md"), "\n".join(md))
  tio.write_json(os.path.join(out_dir, "suite.json"), {
      "suite": dataclasses.asdict(suite), "boards": result["boards"],
      "diagnostics": diag_rows, "seconds": result["seconds"], "figures": figs,
      "provenance": provenance()})


def board_from_files(suite: Suite, workdir: str, out_dir: str, *,
                     partial: bool = False) -> dict:
  """The leaderboard from finished settings' files (``partial``: those finished
  so far; the board then says which settings it covers)."""
  from transferjax.evaluation import suite_board
  t0 = time.time()
  records = load_records(suite, workdir, partial=partial)
  if not records:
    raise ConfigError(f"No finished setting of suite {suite.name} under {workdir}.")
  suite_board.add_loo_prior(records)
  methods = [m for m in tuple(suite.methods) + ("loo_prior",)
             if all(m in r["scores"] for r in records)]
  result = suite_board.leaderboard(records, methods, pool_size=suite.pool_size,
                                   num_pools=suite.num_pools)
  secs = {f"{r['target']}@{r['zoo']}": r["seconds"] for r in records}
  result["seconds"] = {"total": round(sum(v.get("compute_first_run", 0.0)
                                          for v in secs.values()), 1),
                       "zoos": float("nan"), "settings": secs,
                       "board": round(time.time() - t0, 1)}
  result["missing"] = [f"{st.target}@{st.zoo}" for st in suite.settings
                       if f"{st.target}@{st.zoo}" not in secs]
  write_suite_outputs(suite, records, result, out_dir)
  result["records"] = records
  return result
