"""Score any number of sources in chunks, so memory does not grow with their count.

Sources are taken a chunk at a time (consecutive members of one group with
the same feature and logit widths, at most ``chunk_mb`` of float32 outputs):
their features on the scoring rows are computed (or read), checked, scored by
every method, and dropped. Peak memory is one chunk's outputs plus what the
methods allocate on it, whatever the number of sources (benchmarks/
stream_scoring.py measures it). A finished chunk's scores are cached in
``cache_dir``, so an interrupted run resumes where it stopped.

Seeds: the chunk starting at source ``s`` scores with ``fold_in(key, s)``
(``key`` itself for the first chunk, so a set that fits in one chunk scores
exactly like ``scoring.rank.score_zoo``); source ``i`` of a chunk then uses
``fold_in(chunk key, i)``. Results are reproducible for a given chunk size.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import Sequence

import jax
import numpy as np

from transferjax import io as tio
from transferjax.errors import ConfigError, TransferJaxError
from transferjax.scoring.methods import METHODS, RankConfig, RankInputs, score_method
from transferjax.sources.base import SourceGroup, check_outputs, unique_names

# What streamed sources give the methods (``scoring.methods.NEEDS``): no
# source pool or target pixels; logits, classes, zoo metrics and folds only when
# the sources and the protocol have them (``_applicable``).
PROVIDED = frozenset({"features", "target_net", "source_logits", "source_classes",
                      "folds", "zoo_metrics"})


@dataclasses.dataclass(frozen=True)
class StreamConfig:
  """How sources are streamed.

  Attributes:
    chunk_mb: float32 outputs (features + logits) held per chunk, in MiB.
    max_chunk: most sources per chunk.
    allow_upsample: let sources enlarge target images smaller than their input.
    progress: show a tqdm bar.
    cache_dir: folder of per-chunk score caches (None: no resume).
  """
  chunk_mb: float = 192.0
  max_chunk: int = 64
  allow_upsample: bool = False
  progress: bool = True
  cache_dir: str | None = None


@dataclasses.dataclass(frozen=True)
class Chunk:
  group: int
  members: tuple[int, ...]
  start: int          # global index of the first member
  d: int
  c: int | None


@dataclasses.dataclass
class StreamResult:
  """Scores of every source.

  Attributes:
    names: ``[q]`` source names, in input order.
    scores: ``{method: float64 [q]}`` (NaN where a method does not apply).
    notes: ``{method: [sentences]}`` why some scores are NaN.
    seconds: ``{method: total seconds}`` spent scoring (outputs excluded).
    output_seconds: seconds spent computing/reading source outputs.
    feature_dims: ``[q]`` feature width of each source.
  """
  names: list[str]
  scores: dict[str, np.ndarray]
  notes: dict[str, list[str]]
  seconds: dict[str, float]
  output_seconds: float
  feature_dims: np.ndarray


def plan_chunks(groups: Sequence[SourceGroup], num_rows: int,
                cfg: StreamConfig) -> list[Chunk]:
  """Chunks of consecutive same-width members of one group."""
  chunks, start = [], 0
  for gi, g in enumerate(groups):
    shapes = g.output_shapes(num_rows)
    members: list[int] = []

    def flush():
      nonlocal members
      if members:
        d, c = shapes[members[0]]
        chunks.append(Chunk(gi, tuple(members), start + members[0], d, c))
      members = []

    for i, (d, c) in enumerate(shapes):
      per_source = num_rows * (d + (c or 0)) * 4
      cap = max(1, min(cfg.max_chunk, int(cfg.chunk_mb * 2**20 // max(per_source, 1))))
      if members and (shapes[members[0]] != (d, c) or len(members) >= cap):
        flush()
      members.append(i)
    flush()
    start += len(g)
  return chunks


def _applicable(method: str, inp: RankInputs, has_logits: bool,
                has_classes: bool) -> str | None:
  """Why ``method`` cannot score these sources (from its declared needs), or None."""
  spec = METHODS[method]
  if spec.needs - PROVIDED:
    return "needs the source pool and target images (zoo sources only)"
  if "source_logits" in spec.needs and not has_logits:
    return "needs source-task logits, which these sources do not give"
  if "source_classes" in spec.needs and not has_classes:
    return "needs the number of source classes (sources with logits)"
  if "zoo_metrics" in spec.needs and spec.zoo_metric not in inp.source_metrics:
    return "needs zoo training metrics (zoo sources only)"
  if "folds" in spec.needs and len(np.unique(inp.folds)) < 2:
    return "needs the cross-fitting protocol"
  return None


def _signature(labels, t, folds, methods, rank_cfg, names, chunk, strict) -> str:
  h = hashlib.sha256()
  for a in (labels, t, folds):
    h.update(np.ascontiguousarray(a).tobytes())
  h.update(json.dumps([list(methods), dataclasses.asdict(rank_cfg), list(names),
                       dataclasses.asdict(chunk), strict], sort_keys=True).encode())
  return h.hexdigest()


def score_streamed(groups: Sequence[SourceGroup], images: np.ndarray, rows: np.ndarray,
                   labels: np.ndarray, t: np.ndarray, folds: np.ndarray,
                   methods: Sequence[str], rank_cfg: RankConfig,
                   cfg: StreamConfig = StreamConfig(), *,
                   strict: bool = True) -> StreamResult:
  """Scores every source of ``groups`` with every method, a chunk at a time.

  Args:
    groups: source groups (their members are the sources, in order).
    images: all target images ``[N, h, w, c]`` in ``[0, 1]`` (unused by
      feature files).
    rows: ``[n]`` target rows of the scoring set (into ``images``).
    labels: ``[n]`` target labels of those rows.
    t: ``[n, d_t]`` target-net scores of those rows.
    folds: ``[n]`` cross-fitting fold of each row.
    methods: keys of ``scoring.methods.METHODS``.
    rank_cfg: estimator settings (``method`` is overridden per method).
    cfg: chunking, progress and resume.
    strict: raise when a method fails on a chunk; otherwise its scores there
      are NaN and the error goes to ``notes`` (``--methods=all``).

  Returns:
    A ``StreamResult``.
  """
  unknown = [m for m in methods if m not in METHODS]
  if unknown:
    raise ConfigError(f"Unknown method(s) {unknown}; choose from {sorted(METHODS)} "
                      "or 'all'.")
  names = unique_names(groups)
  rows = np.asarray(rows)
  n = len(rows)
  chunks = plan_chunks(groups, int(images.shape[0]) if images is not None else n, cfg)
  q = len(names)
  scores = {m: np.full(q, np.nan) for m in methods}
  notes: dict[str, list[str]] = {m: [] for m in methods}
  seconds = {m: 0.0 for m in methods}
  dims = np.zeros(q, np.int64)
  out_s = 0.0
  root = jax.random.key(rank_cfg.seed)
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  bar = tqdm(total=q, unit="source", desc="scoring sources", disable=not cfg.progress)
  for ch in chunks:
    g = groups[ch.group]
    idx = np.arange(ch.start, ch.start + len(ch.members))
    dims[idx] = ch.d
    sig = _signature(labels, t, folds, methods, rank_cfg, [names[i] for i in idx], ch,
                     strict)
    cache = (os.path.join(cfg.cache_dir, f"chunk_{ch.start:07d}.json")
             if cfg.cache_dir else None)
    if cache and os.path.exists(cache):
      stored = tio.read_json(cache)
      if stored.get("signature") == sig:
        for m in methods:
          scores[m][idx] = [np.nan if v is None else v for v in stored["scores"][m]]
          notes[m] += stored["notes"][m]
        bar.update(len(idx))
        continue
    t0 = time.time()
    outs = g.outputs(ch.members, images, rows, allow_upsample=cfg.allow_upsample)
    checked = [check_outputs(names[i], f, lg, n) for i, (f, lg) in zip(idx, outs)]
    del outs
    out_s += time.time() - t0
    infos = [g.infos[i] for i in ch.members]
    has_logits = checked[0][1] is not None
    features = np.stack([f for f, _ in checked])
    logits = (np.stack([lg for _, lg in checked]) if has_logits
              else np.zeros((len(idx), n, 2), np.float32))
    del checked
    num_classes = np.array([(info.num_classes or (logits.shape[-1] if has_logits else 2))
                            for info in infos])
    metric_keys = set.intersection(*(set(info.metrics) for info in infos))
    inp = RankInputs(labels=np.asarray(labels), t=np.asarray(t), features=features,
                     source_logits=logits, source_num_classes=num_classes,
                     folds=np.asarray(folds),
                     source_metrics={k: np.array([info.metrics[k] for info in infos])
                                     for k in metric_keys})
    has_classes = all(info.num_classes is not None for info in infos) or has_logits
    key = root if ch.start == 0 else jax.random.fold_in(root, ch.start)
    chunk_notes = {m: [] for m in methods}
    for m in methods:
      why = _applicable(m, inp, has_logits, has_classes)
      if why:
        if strict:
          raise ConfigError(f"method {m!r} {why}; sources {names[idx[0]]!r}... "
                            "cannot be scored by it. Choose other --methods.")
        chunk_notes[m].append(f"{names[idx[0]]} .. {names[idx[-1]]}: {why}")
        continue
      bar.set_postfix_str(m)
      t1 = time.time()
      try:
        scores[m][idx] = score_method(inp, dataclasses.replace(rank_cfg, method=m), key)
      except TransferJaxError as e:
        if strict:
          raise
        chunk_notes[m].append(f"{names[idx[0]]} .. {names[idx[-1]]}: {e}")
      seconds[m] += time.time() - t1
    for m in methods:
      notes[m] += chunk_notes[m]
    if cache:
      tio.write_json(cache, {"signature": sig, "names": [names[i] for i in idx],
                             "scores": {m: scores[m][idx] for m in methods},
                             "notes": chunk_notes})
    del inp, features, logits
    bar.update(len(idx))
    logging.info("scored sources %d-%d of %d", idx[0] + 1, idx[-1] + 1, q)
  bar.close()
  return StreamResult(names, scores, notes, seconds, out_s, dims)
