"""``run(config)`` of ``python -m experiments.rank --sources=...``: rank any sources.

``sources + target -> split -> N_t on a gray working copy -> scoring set
(X, Y, T) -> each source's features of X (streamed, a chunk at a time) ->
scores of every method -> ranking.json/csv, ranking_top.md, scores.png``.

The target is loaded once, in colour when a source takes colour, at the
largest input size the sources take (loaders that resize: the built-in sets
and ``tfds:``) or at its native size (``folder:``, ``npz:``); each source then
gets its own resized, channel-converted, normalised copy. The target net
``N_t`` only supplies the conditioning variable ``T`` of ``I(Y; F | T)``; it
is the paper's small CNN (``FitConfig.arch``, ``lenet20``: 20x20 gray), trained
on a gray 20x20 copy of the target whatever the sources take. That keeps
``T`` cheap and the same for every source set, so a ranking of a zoo through
``--sources=zoo:PATH`` equals the ``--zoo=PATH`` ranking.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time

import jax
import numpy as np

from transferjax.provenance import provenance
from transferjax import io as tio
from transferjax.data import load_target, paper_split, split_sizes_report
from transferjax.data.container import Dataset
from transferjax.data.preprocess import resize_images, to_gray
from transferjax.data.registry import dataset_options
from transferjax.data.tasks import TargetSplit
from transferjax.errors import ConfigError, DataError
from transferjax.models import arch_spec
from transferjax.scoring.methods import METHODS, RankInputs, methods_given
from transferjax.scoring.rank import RankJob, gamma_max
from transferjax.scoring.target import build_scoring_set
from transferjax.sources.base import SourceGroup
from transferjax.sources.spec import parse_sources
from transferjax.sources.stream import PROVIDED, StreamConfig, StreamResult, plan_chunks, score_streamed


@dataclasses.dataclass(frozen=True)
class SourcesRankConfig:
  """Flags of ``experiments.rank --sources=...``.

  Attributes:
    sources: comma-separated source specs (``transferjax.sources.spec``).
    target: target spec (``mnist:4,9``, ``folder:PATH``, ``npz:PATH``,
      ``tfds:NAME``, each with an optional ``:A,B`` class pair).
    workdir: output folder.
    methods: ranking methods; the first orders the table; ``("all",)`` is
      every method that applies.
    image_size: side the target is loaded at (None: see the module docstring).
    fraction, num_labeled, split_seed: the target split (as ``--zoo``).
    job: protocol, folds, estimator settings and the target net.
    stream: chunking, progress and upsampling.
    top: rows of the printed table.
  """
  sources: str
  target: str
  workdir: str
  methods: tuple[str, ...] = ("cmi_knn",)
  image_size: int | None = None
  fraction: float = 0.05
  num_labeled: int | None = None
  split_seed: int = 0
  job: RankJob = RankJob()
  stream: StreamConfig = StreamConfig()
  top: int = 10


def resolve_methods(methods) -> tuple[tuple[str, ...], bool]:
  """``(methods, is_all)``: ``"all"`` expands to every method."""
  methods = tuple(methods)
  if methods == ("all",):
    return methods_given(PROVIDED), True
  unknown = [m for m in methods if m not in METHODS]
  if unknown or not methods:
    raise ConfigError(f"Unknown method(s) {unknown}; choose from "
                      f"{sorted(methods_given(PROVIDED))} or --methods=all.")
  zoo_only = [m for m in methods if m not in methods_given(PROVIDED)]
  if zoo_only:
    raise ConfigError(f"Method(s) {zoo_only} need a zoo's source pool, which "
                      "--sources do not have; choose from "
                      f"{sorted(methods_given(PROVIDED))} or --methods=all.")
  return methods, False


def _base_spec(spec: str) -> str:
  """The data set part of a target spec (without a ``:A,B`` class pair)."""
  try:
    dataset_options(spec)
    return spec
  except DataError:
    return spec.rpartition(":")[0] or spec


def load_target_for_sources(spec: str, groups, image_size: int | None) -> Dataset:
  """The target at the size/colour the sources need (module docstring)."""
  pres = [i.preprocess for g in groups for i in g.infos if i.preprocess is not None]
  color = any(p.channels == 3 for p in pres)
  accepted = dataset_options(_base_spec(spec))
  options = {}
  if "color" in accepted and color:
    options["color"] = True
  if "image_size" in accepted:
    native = accepted["image_size"] is None  # folder:, npz: keep native by default
    sizes = [p.input_size for p in pres if p.input_size]
    if image_size is not None:
      options["image_size"] = int(image_size)
    elif not native:
      options["image_size"] = max(sizes) if sizes else int(accepted["image_size"])
  return load_target(spec, **options)


def working_copy(ds: Dataset, size: int) -> Dataset:
  """Gray ``size x size`` copy for the target net (the same array when it is)."""
  images = ds.images if ds.channels == 1 and ds.image_size == size else resize_images(
      to_gray(ds.images), size)
  return Dataset(images, ds.labels, ds.class_names, ds.name, dict(ds.metadata))


def split_rows(ds: Dataset, **split_args) -> dict[str, np.ndarray]:
  """Rows of ``D_t``, ``D_v``, ``D_e`` in ``paper_split(ds, **split_args)``.

  ``paper_split`` depends on the labels and the seed only, so splitting a
  stand-in whose "images" are the row numbers gives the rows of each part.
  """
  ids = np.arange(ds.num_examples, dtype=np.float32).reshape(-1, 1, 1, 1)
  if ds.num_examples >= 2**24:
    raise DataError("targets of more than 16.7M images are not supported.")
  split = paper_split(Dataset(ids, ds.labels, ds.class_names, ds.name), **split_args)
  return {part: getattr(split, part).images.ravel().astype(np.int64)
          for part in ("train", "val", "test")}


def ranking_rows(result: StreamResult, groups, primary: str,
                 g_max: float | None) -> list[dict]:
  """One row per source, best first by ``primary``; NaN scores rank last."""
  infos = [i for g in groups for i in g.infos]
  s = result.scores[primary]
  order = np.argsort(np.where(np.isfinite(s), -s, np.inf), kind="stable")
  rank = np.empty(len(s), int)
  rank[order] = np.arange(1, len(s) + 1)
  finite = s[np.isfinite(s)]
  top = float(finite.max()) if finite.size else float("nan")
  rows = []
  for i, info in enumerate(infos):
    pre = info.preprocess
    row = {"rank": int(rank[i]), "source": info.name, "kind": info.kind,
           "input": (f"{pre.input_size}x{pre.input_size}x{pre.channels}"
                     if pre is not None else "features"),
           "feature_dim": int(result.feature_dims[i]),
           "source_classes": info.num_classes if info.num_classes else "",
           "score": float(s[i]),
           "score_normalized": float(s[i] / top) if top > 0 else float("nan"),
           "gamma_max": g_max if g_max is not None else float("nan")}
    row.update(info.extra)
    for m, v in result.scores.items():
      if m != primary:
        row[m] = float(v[i])
    rows.append(row)
  return sorted(rows, key=lambda r: r["rank"])


def format_table(rows: list[dict], top: int = 10) -> str:
  """The top-``top`` rows as a Markdown table."""
  head = "| rank | source | kind | input | d | score | normalized |"
  lines = [head, "|---:|---|---|---|---:|---:|---:|"]
  for r in rows[:top]:
    lines.append(f"| {r['rank']} | {r['source']} | {r['kind']} | {r['input']} | "
                 f"{r['feature_dim']} | {r['score']:.4f} | {r['score_normalized']:.3f} |")
  return "\n".join(lines)


def plot_scores(rows: list[dict], methods: tuple[str, ...], path: str,
                top: int = 30) -> str:
  """Bars of the primary score (top ``top``); beside them, with several methods,
  every method's rank of those sources."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  shown = rows[:top][::-1]
  names = [r["source"] for r in shown]
  many = len(methods) > 1
  fig, axes = plt.subplots(1, 2 if many else 1, squeeze=False,
                           figsize=(11 if many else 6, max(3.0, 0.8 + 0.28 * len(shown))))
  ax = axes[0, 0]
  ax.barh(np.arange(len(shown)), [r["score"] for r in shown], color="tab:blue")
  ax.set_yticks(np.arange(len(shown)), names, fontsize=7)
  ax.set_xlabel(f"{methods[0]} score")
  ax.set_title(f"top {len(shown)} of {len(rows)} sources by {methods[0]}", fontsize=9)
  if many:
    ranks = np.full((len(shown), len(methods)), np.nan)
    for j, m in enumerate(methods):
      col = np.array([r["score"] if j == 0 else r[m] for r in rows], np.float64)
      order = np.argsort(np.where(np.isfinite(col), -col, np.inf), kind="stable")
      rk = np.empty(len(col))
      rk[order] = np.arange(1, len(col) + 1)
      rk[~np.isfinite(col)] = np.nan
      ranks[:, j] = rk[:top][::-1]
    im = axes[0, 1].imshow(ranks, aspect="auto", cmap="viridis_r", origin="lower")
    axes[0, 1].set_xticks(np.arange(len(methods)), methods, rotation=90, fontsize=7)
    axes[0, 1].set_yticks(np.arange(len(shown)), names, fontsize=7)
    axes[0, 1].set_title("rank of each source by each method (blank: n/a)",
                         fontsize=9)
    fig.colorbar(im, ax=axes[0, 1], label="rank")
  fig.tight_layout()
  tio.save_figure(fig, path)
  return path


def run(config: SourcesRankConfig, groups: list[SourceGroup] | None = None) -> dict:
  """Ranks the sources for the target; writes the outputs; returns rows and meta.

  ``groups`` (built in Python, e.g. ``[ZooGroup(zoo), FlaxGroup(models)]``)
  replaces parsing ``config.sources``, which then only labels the output.
  """
  t0 = time.time()
  methods, is_all = resolve_methods(config.methods)
  groups = parse_sources(config.sources) if groups is None else list(groups)
  target = load_target_for_sources(config.target, groups, config.image_size)
  if "note" in target.metadata:
    print(f"note: target {config.target}: {target.metadata['note']}.")
  # Every source's shapes (and a feature folder's row count) are checked before
  # the target net is trained: a bad source fails in seconds.
  plan = plan_chunks(groups, target.num_examples, config.stream)
  fit = config.job.fit
  work = working_copy(target, arch_spec(fit.arch).image_size)
  args = dict(fraction=config.fraction, num_labeled=config.num_labeled,
              seed=config.split_seed)
  parts = split_rows(work, **args)
  split = TargetSplit(*(work.subset(parts[p]) for p in ("train", "val", "test")),
                      seed=config.split_seed)
  logging.info("target %s: %s", config.target, split_sizes_report(split))
  job = config.job
  fit_cfg = dataclasses.replace(fit, max_classes=max(2, target.num_classes))
  scoring = build_scoring_set(split, protocol=job.protocol, folds=job.folds,
                              cfg=fit_cfg, key=jax.random.key(job.rank.seed),
                              num_target_seeds=job.num_target_seeds)
  rows = (np.concatenate([parts["train"], parts["val"]]) if job.protocol == "crossfit"
          else parts["val"])
  logging.info("target net(s) trained (%.1fs); scoring %d images with %d sources in "
               "%d chunk(s)", time.time() - t0, len(rows), sum(map(len, groups)),
               len(plan))
  os.makedirs(config.workdir, exist_ok=True)
  stream = dataclasses.replace(config.stream,
                               cache_dir=os.path.join(config.workdir, "chunks"))
  result = score_streamed(groups, target.images, rows, scoring.labels, scoring.t,
                          scoring.folds, methods, job.rank, stream, strict=not is_all)
  if is_all:  # keep the methods that scored something (cmi_knn first)
    methods = tuple(m for m in methods if np.isfinite(result.scores[m]).any())
    if not methods:
      raise ConfigError(f"no method could score these sources: {result.notes}")
  primary = methods[0]
  inp = RankInputs(labels=np.asarray(scoring.labels), t=np.asarray(scoring.t),
                   features=np.zeros((0, len(rows), 1)), source_logits=None,
                   source_num_classes=None, folds=scoring.folds, source_metrics={})
  g_max = (gamma_max(inp, dataclasses.replace(job.rank, method=primary))
           if primary.startswith("cmi") else None)
  table_rows = ranking_rows(result, groups, primary, g_max)
  for r in table_rows:
    for m in list(r):
      if m in METHODS and m not in methods:
        del r[m]
  meta = {"sources": config.sources, "target": config.target,
          "target_images": target.num_examples,
          "target_input": f"{target.image_size}x{target.image_size}x{target.channels}",
          "target_net": f"{fit.arch} on gray {work.image_size}x{work.image_size}",
          "methods": list(methods), "primary": primary, "protocol": job.protocol,
          "scoring_set_size": int(len(rows)), "split": split.sizes(),
          "rank_config": dataclasses.asdict(job.rank),
          "stream": {"chunk_mb": stream.chunk_mb, "chunks": len(plan)},
          "method_seconds": result.seconds,
          "notes": {m: v for m, v in result.notes.items() if v},
          "seconds": round(time.time() - t0, 2)}
  if "note" in target.metadata:
    meta["target_note"] = target.metadata["note"]
  wd = config.workdir
  tio.write_json(os.path.join(wd, "ranking.json"), {
      **meta, "ranking": table_rows, "provenance": provenance(),
      "scores": {m: dict(zip(result.names, result.scores[m])) for m in methods}})
  tio.write_csv(os.path.join(wd, "ranking.csv"), table_rows)
  table = format_table(table_rows, config.top)
  tio.write_text(os.path.join(wd, "ranking_top.md"),
                 f"# Top {min(config.top, len(table_rows))} sources for "
                 f"{config.target} by {primary}\n\n{table}\n")
  plot_scores(table_rows, methods, os.path.join(wd, "scores.png"))
  print(f"\nRanking of {len(table_rows)} sources for {config.target} by {primary} "
        f"({job.protocol} protocol, n={len(rows)} scoring images"
        + (f", gamma_max = H(Y|T) = {g_max:.4f}" if g_max is not None else "") + "):")
  print(table)
  print(f"\nwrote {os.path.join(wd, 'ranking.json')}, ranking.csv, ranking_top.md, "
        f"scores.png ({time.time() - t0:.1f}s)")
  return {"rows": table_rows, "meta": meta, "workdir": wd, "result": result,
          "target": target,
          "scoring": {"rows": rows, "labels": np.asarray(scoring.labels),
                      "t": np.asarray(scoring.t), "folds": np.asarray(scoring.folds)}}
