"""Cached stages shared by the multi-source and layer-selection experiments.

One setting = a zoo (or zoo union), a target and its splits. Binary targets
are judged by test AUC, multi-class ones by top-1 accuracy (``gt_metrics``);
stored arrays keep the name ``auc`` for either score. Every stage writes one
file per split (atomic; a finished file is reused when its signature matches,
otherwise CheckpointError), so a killed run resumes where it stopped and the
two experiments share their fine-tuning:

* ``finetune_stage(s, l)``: every source fine-tuned with its first ``l`` layers
  transferred (``l = 2``: every conv layer, the paper's choice and the
  single-source ground truth), per-seed test score and test logits
  (``finetune_l{l}_seeds{S}_split{s}.npz``); with ``reuse_finetune`` the
  ``l = 2`` runs are read from a finished study of the same setting;
* ``scoring_stage(s)``: the cross-fitted scoring set, the single-source CMI, the
  CMI of every depth, and the greedy multi-source selection with its null
  (``scores_split{s}.json``);
* ``set_truth_stage(s)``: the ensemble and concatenated-feature ground truth of
  every k-subset (``sets_seeds{S}_split{s}.npz``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import time

import jax
import numpy as np

from transferjax import estimators as est
from transferjax import io as tio
from transferjax.data import paper_split, split_sizes_report
from transferjax.errors import CheckpointError, ConfigError
from transferjax.evaluation.diagnostic import transfer_matters
from transferjax.scoring.job import load_target_for_zoo, open_zoo
from transferjax.scoring.methods import RankConfig, score_method
from transferjax.scoring.rank import RankJob, score_zoo
from transferjax.selection import layers as layers_lib
from transferjax.selection import multi_source as ms
from transferjax.selection import set_truth
from transferjax.transfer import gt_metrics
from transferjax.transfer.finetune import finetune_sources
from transferjax.transfer.fit import FitConfig
from transferjax.train import zoo as zoo_lib


@dataclasses.dataclass(frozen=True)
class SettingConfig:
  """One informative setting and how its stages are computed.

  Attributes:
    zoo: workdir of a trained zoo.
    target: target spec (``spots``, ``faces``, ``mnist:5,6,7,8,9``, ...).
    cache: folder of the per-split stage files (default
      ``runs/selection/<zoo name>_<target>``).
    fraction, num_labeled, shots_per_class: labeled share / absolute ``|D_a|``
      / labeled images per class (``paper_split``).
    max_test_per_class: cap on the test set per class (None: no cap).
    metric: ground truth of a net and of a set (``gt_metrics``; ``"auto"``:
      AUC for binary targets, top-1 accuracy for multi-class ones).
    finetune_chunk: models per compiled fine-tuning call.
    reuse_finetune: a finished study workdir of the same setting (e.g. a suite
      setting folder); its fine-tuning runs with every conv layer transferred
      (``transfer/split_{s}_chunks``, test logits included) are read instead of
      fine-tuning again, the first ``num_seeds`` seeds of each split.
    num_splits: target splits (seeds 0..).
    num_seeds: fine-tuning seeds per source and split (and head inits per set).
    pool_size: use the first ``pool_size`` sources (0: the whole zoo).
    ks: set sizes compared.
    n_perm, alpha: the greedy stopping rule's null.
    head_dim: each source's features are PCA-reduced to this many dimensions
      (fitted on the split's unlabeled target images) before the concatenated
      head: the head's cost grows with k * dim, and an exhaustive search trains
      thousands of heads.
    head_steps, head_lr: the concatenated-feature head (full-batch Adam).
    head_seeds: head initializations per subset.
    grid: spatial pooling of conv depths.
    finetune: fine-tuning config.
    job: ranking protocol and estimator (the CMI of ``job.rank``).
    seed: root seed.
  """
  zoo: str
  target: str = "spots"
  cache: str | None = None
  fraction: float = 0.1
  num_labeled: int | None = None
  shots_per_class: int | None = None
  max_test_per_class: int | None = None
  metric: str = "auto"
  num_splits: int = 2
  num_seeds: int = 2
  pool_size: int = 0
  ks: tuple[int, ...] = (2, 3)
  n_perm: int = 20
  alpha: float = 0.05
  head_dim: int = 32
  head_steps: int = 100
  head_lr: float = 1e-2
  head_seeds: int = 1
  grid: int = 2
  finetune: FitConfig = FitConfig()
  job: RankJob = RankJob()
  seed: int = 0
  finetune_chunk: int = 128
  reuse_finetune: str | None = None

  def __post_init__(self):
    if self.num_splits < 1 or self.num_seeds < 1:
      raise ConfigError("num_splits and num_seeds must be >= 1.")
    if not self.ks or min(self.ks) < 1:
      raise ConfigError(f"ks must be set sizes >= 1, got {self.ks}.")

  @property
  def name(self) -> str:
    base = os.path.basename(os.path.normpath(self.zoo))
    tgt = self.target.replace(":", "_").replace(",", "-").replace("/", "_")
    return f"{base}__{tgt}"

  @property
  def cache_dir(self) -> str:
    return self.cache or os.path.join("runs", "selection", self.name)


@dataclasses.dataclass
class Setting:
  """A loaded setting: config, zoo (restricted to the pool) and target."""
  cfg: SettingConfig
  zoo: zoo_lib.Zoo
  target: object

  @property
  def q(self) -> int:
    return self.zoo.num_models

  def split(self, s: int):
    return paper_split(self.target, fraction=self.cfg.fraction,
                       num_labeled=self.cfg.num_labeled, seed=s,
                       shots_per_class=self.cfg.shots_per_class,
                       max_test_per_class=self.cfg.max_test_per_class)

  @property
  def metric(self) -> str:
    """``"auc"``, ``"accuracy"`` or ``"balanced_accuracy"``."""
    return gt_metrics.resolve_metric(self.cfg.metric, self.target.num_classes)

  def fit_config(self, split) -> FitConfig:
    return dataclasses.replace(self.cfg.finetune, arch=self.zoo.arch,
                               max_classes=max(2, split.train.num_classes))


def load_setting(cfg: SettingConfig) -> Setting:
  """Opens the zoo (first ``pool_size`` sources) and the target at its size."""
  zoo = open_zoo(cfg.zoo)
  if cfg.pool_size:
    if not 2 <= cfg.pool_size <= zoo.num_models:
      raise ConfigError(f"pool_size must be in 2..{zoo.num_models} (the zoo's "
                        f"sources) or 0 for all, got {cfg.pool_size}.")
    zoo = dataclasses.replace(
        zoo, params=jax.tree.map(lambda a: np.asarray(a)[:cfg.pool_size], zoo.params),
        tasks=zoo.tasks[:cfg.pool_size],
        metrics={k: np.asarray(v)[:cfg.pool_size] for k, v in zoo.metrics.items()})
  target = load_target_for_zoo(cfg.target, zoo, None)
  st = Setting(cfg, zoo, target)
  _ = st.metric   # a metric the target cannot have fails here, before any work
  return st


def _signature(st: Setting, **extra) -> dict:
  cfg = st.cfg
  h = hashlib.sha256(np.ascontiguousarray(st.target.images).tobytes())
  h.update(np.ascontiguousarray(st.target.labels).tobytes())
  return tio._to_jsonable({
      "zoo": os.path.abspath(cfg.zoo), "pool": [t.task_id for t in st.zoo.tasks],
      "target": cfg.target, "target_data": h.hexdigest()[:16],
      "fraction": cfg.fraction, "num_labeled": cfg.num_labeled,
      "shots_per_class": cfg.shots_per_class,
      "max_test_per_class": cfg.max_test_per_class, "metric": st.metric,
      "seed": cfg.seed, **extra})


def _check(path: str, stored: dict, wanted: dict) -> None:
  diff = [k for k in wanted if stored.get(k) != wanted[k]]
  if diff:
    raise CheckpointError(f"{path} was made with different settings "
                          f"({', '.join(diff)}); use another --cache folder or the "
                          "same flags.")


def _cached_npz(path: str, signature: dict, compute) -> dict:
  if os.path.exists(path):
    data = tio.load_npz(path)
    _check(path, json.loads(str(data.pop("signature"))), signature)
    return data
  data = compute()
  if jax.process_index() == 0:
    tio.save_npz(path, signature=np.array(json.dumps(signature)), **data)
  return data


def _cached_json(path: str, signature: dict, compute) -> dict:
  if os.path.exists(path):
    data = tio.read_json(path)
    _check(path, data.get("signature", {}), signature)
    return data
  data = {"signature": signature, **tio._to_jsonable(compute())}
  if jax.process_index() == 0:
    tio.write_json(path, data)
  return data


def _study_finetune(st: Setting, s: int, split) -> dict | None:
  """The ``l = 2`` runs of split ``s`` from ``cfg.reuse_finetune`` (first
  ``num_seeds`` seeds), or None when that study has not finished the split."""
  cfg = st.cfg
  folder = os.path.join(cfg.reuse_finetune, "transfer", f"split_{s}_chunks")
  sig_path = os.path.join(folder, "signature.json")
  if not os.path.exists(sig_path):
    return None
  theirs = tio.read_json(sig_path)["signature"]
  mine = {"zoo": os.path.abspath(cfg.zoo), "target": cfg.target,
          "fraction": cfg.fraction, "num_labeled": cfg.num_labeled,
          "shots_per_class": cfg.shots_per_class,
          "max_test_per_class": cfg.max_test_per_class, "seed": cfg.seed}
  skip = ("arch", "max_classes")   # set per split from the zoo and the target
  fit = {k: v for k, v in tio._to_jsonable(dataclasses.asdict(cfg.finetune)).items()
         if k not in skip}
  diff = [k for k, v in mine.items() if theirs.get(k) != v]
  diff += [f"finetune.{k}" for k, v in fit.items()
           if theirs.get("finetune", {}).get(k) != v]
  if cfg.pool_size:
    diff.append("pool_size (a study fine-tunes the whole zoo)")
  if int(theirs.get("num_seeds", 0)) < cfg.num_seeds:
    diff.append("num_seeds")
  if theirs.get("metric", gt_metrics.resolve_metric("auto", st.target.num_classes)) \
      != st.metric:
    diff.append("metric")
  if diff:
    raise CheckpointError(f"--reuse_finetune={cfg.reuse_finetune} was fine-tuned with "
                          f"other settings ({', '.join(diff)}); pass the same flags "
                          "as that study or drop --reuse_finetune.")
  q, num_seeds = st.q, cfg.num_seeds
  auc = np.full((q + 1, num_seeds), np.nan)
  logits = np.full((q + 1, num_seeds, split.test.num_examples,
                    max(2, split.train.num_classes)), np.nan, np.float32)
  for name in sorted(os.listdir(folder)):
    if not (name.startswith("chunk_") and name.endswith(".json")):
      continue
    rec = tio.read_json(os.path.join(folder, name))
    lpath = os.path.join(folder, name[:-len(".json")] + "_logits.npz")
    if not os.path.exists(lpath):
      return None
    lg = tio.load_npz(lpath)["test_logits"]
    for j, (i, seed) in enumerate(rec["pairs"]):
      if seed < num_seeds and i <= q:
        auc[i, seed], logits[i, seed] = rec["auc"][j], lg[j]
  if np.isnan(auc).any():
    return None
  print(f"[{cfg.name}] split {s}: {auc.size} fine-tunes read from {folder}", flush=True)
  return {"auc": auc[:q], "no_transfer": auc[q], "test_logits": logits[:q],
          "test_labels": split.test.labels}


def _more_seeds(st: Setting, s: int, num_transferred: int, sig: dict) -> dict | None:
  """The first ``num_seeds`` seeds of a cached run of the same split and depth
  with more seeds (model (source, seed) has the same key whatever the seed
  count), or None."""
  cfg = st.cfg
  pattern = re.compile(rf"finetune_l{num_transferred}_seeds(\d+)_split{s}\.npz")
  names = os.listdir(cfg.cache_dir) if os.path.isdir(cfg.cache_dir) else []
  for name in sorted(names):
    m = pattern.fullmatch(name)
    if not m or int(m.group(1)) <= cfg.num_seeds:
      continue
    data = tio.load_npz(os.path.join(cfg.cache_dir, name))
    stored = json.loads(str(data.pop("signature")))
    if stored == dict(sig, num_seeds=int(m.group(1))):
      n = cfg.num_seeds
      print(f"[{cfg.name}] split {s}: first {n} seeds of {name}", flush=True)
      return {"auc": data["auc"][:, :n], "no_transfer": data["no_transfer"][:n],
              "test_logits": data["test_logits"][:, :n],
              "test_labels": data["test_labels"]}
  return None


def finetune_stage(st: Setting, s: int, num_transferred: int) -> dict:
  """``{"auc": [q, S], "no_transfer": [S], "test_logits": [q, S, E, C],
  "test_labels": [E]}`` for split ``s`` with ``num_transferred`` layers
  (``auc``: the setting's metric, AUC or accuracy)."""
  cfg = st.cfg
  sig = _signature(st, stage="finetune", split=s, layers=num_transferred,
                   num_seeds=cfg.num_seeds,
                   finetune=dataclasses.asdict(cfg.finetune))

  def compute():
    t0 = time.time()
    more = _more_seeds(st, s, num_transferred, sig)
    if more is not None:
      return more
    split = st.split(s)
    if cfg.reuse_finetune and num_transferred == 2:
      got = _study_finetune(st, s, split)
      if got is not None:
        return got
      logging.info("[%s] split %d: %s has not finished it; fine-tuning here.",
                   cfg.name, s, cfg.reuse_finetune)
    out = finetune_sources(st.zoo.params, split, num_seeds=cfg.num_seeds,
                           cfg=st.fit_config(split),
                           root_key=jax.random.fold_in(jax.random.key(cfg.seed), s),
                           num_transferred=num_transferred, metric=st.metric,
                           model_chunk=cfg.finetune_chunk)
    print(f"[{cfg.name}] split {s}, first {num_transferred} layer(s) transferred: "
          f"{out.auc.size} fine-tunes in {time.time() - t0:.0f}s; sources "
          f"{out.auc.mean(1).min():.4f}..{out.auc.mean(1).max():.4f}, no transfer "
          f"{out.no_transfer.mean():.4f} ({st.metric})", flush=True)
    return {"auc": out.auc, "no_transfer": out.no_transfer,
            "test_logits": out.test_logits, "test_labels": split.test.labels}

  return _cached_npz(os.path.join(
      cfg.cache_dir, f"finetune_l{num_transferred}_seeds{cfg.num_seeds}_split{s}.npz"),
      sig, compute)


def diagnostic(ft: list[dict]) -> dict:
  """The transfer-matters diagnostic (``evaluation.diagnostic``) of the
  fine-tuning runs ``ft`` (one ``finetune_stage`` dict per split)."""
  auc = np.stack([np.asarray(d["auc"]) for d in ft], axis=-1)            # [q, S, P]
  no = np.stack([np.asarray(d["no_transfer"]) for d in ft], axis=-1)     # [S, P]
  return transfer_matters(auc, no)


def scoring_stage(st: Setting, s: int) -> dict:
  """Single-source CMI, CMI per depth and the greedy selection on split ``s``."""
  cfg = st.cfg
  k_max = min(max(cfg.ks), st.q)
  sig = _signature(st, stage="scores", split=s, job=dataclasses.asdict(cfg.job),
                   k_max=k_max, n_perm=cfg.n_perm, alpha=cfg.alpha, grid=cfg.grid)

  def compute():
    t0 = time.time()
    split = st.split(s)
    logging.info("[%s] split %d: %s", cfg.name, s, split_sizes_report(split))
    rank = dataclasses.replace(cfg.job.rank, seed=cfg.job.rank.seed + s)
    job = dataclasses.replace(cfg.job, rank=rank)
    scores, inp, scoring = score_zoo(st.zoo, split, job, methods=(rank.method,))
    depth = layers_lib.depth_features(st.zoo.params, st.zoo.arch, scoring.images,
                                      grid=cfg.grid)
    depth_scores = {d: score_method(dataclasses.replace(inp, features=f), rank)
                    for d, f in depth.items()}
    greedy = ms.greedy_select(inp.labels, inp.features, inp.t, k=k_max, k_nn=rank.k,
                              jitter=rank.jitter, key=jax.random.key(rank.seed),
                              n_perm=cfg.n_perm, alpha=cfg.alpha)
    print(f"[{cfg.name}] split {s}: scored {st.q} sources x {len(depth)} depths, "
          f"greedy {greedy.selected} (gains {np.round(greedy.gains, 4).tolist()}, "
          f"null q{1 - cfg.alpha:.2f} {np.round(greedy.null_quantiles, 4).tolist()}) "
          f"in {time.time() - t0:.0f}s", flush=True)
    return {"split": s, "scoring_set_size": len(inp.labels),
            "single": scores[rank.method], "depth_scores": depth_scores,
            "greedy": {"selected": greedy.selected, "gains": greedy.gains,
                       "null_quantiles": greedy.null_quantiles,
                       "num_significant": greedy.num_significant,
                       "candidate_gains": greedy.candidate_gains},
            "seconds": round(time.time() - t0, 1)}

  return _cached_json(os.path.join(cfg.cache_dir, f"scores_split{s}.json"), sig,
                      compute)


def set_truth_stage(st: Setting, s: int, ft: dict) -> dict:
  """``ens_k{k}``/``head_k{k}`` ``[C(q, k), S]`` score (AUC or accuracy) of every
  k-subset (k = 1 and ``cfg.ks``) on split ``s``: the ensemble of fine-tuned
  sources and a fresh head on the concatenated frozen features (``ft``: the l=2
  fine-tuning of split s)."""
  cfg = st.cfg
  ks = sorted({1, *[k for k in cfg.ks if k <= st.q]})
  sig = _signature(st, stage="sets", split=s, ks=ks, num_seeds=cfg.num_seeds,
                   head_dim=cfg.head_dim,
                   head_steps=cfg.head_steps, head_seeds=cfg.head_seeds,
                   head_lr=cfg.head_lr, finetune=dataclasses.asdict(cfg.finetune))

  def compute():
    t0 = time.time()
    split = st.split(s)
    images = np.concatenate([split.train.images, split.val.images, split.test.images])
    labels = np.concatenate([split.train.labels, split.val.labels, split.test.labels])
    feats = _cached_npz(
        os.path.join(cfg.cache_dir, f"headfeats_split{s}.npz"),
        _signature(st, stage="headfeats", split=s, head_dim=cfg.head_dim),
        lambda: {"feats": np.asarray(est.reduce_dim(
            zoo_lib.zoo_features(st.zoo, images=images), cfg.head_dim))})["feats"]
    out = {}
    for k in ks:
      subs = ms.all_subsets(st.q, k)
      out[f"ens_k{k}"] = set_truth.ensemble_score(
          ft["test_logits"], ft["test_labels"], subs, metric=st.metric,
          num_classes=st.target.num_classes)
      out[f"head_k{k}"] = set_truth.concat_head_score(
          feats, labels, split.train.num_examples, split.val.num_examples, subs,
          num_seeds=cfg.head_seeds, metric=st.metric,
          num_classes=st.target.num_classes,
          key=jax.random.fold_in(jax.random.key(cfg.seed + 104729), s * 10 + k),
          steps=cfg.head_steps, lr=cfg.head_lr)
      print(f"[{cfg.name}] split {s}: ground truth of {len(subs)} sets of {k} "
            f"({time.time() - t0:.0f}s)", flush=True)
    return out

  return _cached_npz(os.path.join(cfg.cache_dir,
                                  f"sets_seeds{cfg.num_seeds}_split{s}.npz"),
                     sig, compute)


def setting_rows(out: str, json_name: str, table_key: str) -> list[dict]:
  """The rows of ``table_key`` in every ``<out>/<setting>/<json_name>``, each
  tagged with its setting (folder name); what the summaries over settings show."""
  rows = []
  for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
    path = os.path.join(out, name, json_name)
    if os.path.exists(path):
      rows += [{"setting": name, **r} for r in tio.read_json(path)[table_key]]
  return rows
