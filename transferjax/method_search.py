"""Choose a ranking method on a suite's development settings, confirm it on the rest.

The candidates are fixed in ``CANDIDATES`` before any suite result was seen
(estimator variants of the paper's CMI, rank consensus of it with other
evidence, and a ranker learned across targets). Protocol:

1. every candidate is scored on every setting (estimator variants from the
   saved scoring inputs ``scores/inputs_{s}.npz``: no target net is retrained;
   combinations from the cached scores of their members);
2. the candidate with the highest mean sub-pool weighted tau on the ``dev``
   settings is chosen (the learned ranker is evaluated leave-one-target-out on
   them);
3. on the ``confirm`` settings (the learned ranker now fit on all ``dev``
   settings) the chosen candidate is compared with every other method by the
   paired bootstrap over settings and sub-pools. It *wins* only if every one of
   those CIs of its advantage excludes 0.
"""
from __future__ import annotations

import dataclasses
import os
import time

import jax
import numpy as np

from transferjax import io as tio
from transferjax.evaluation import suite_board
from transferjax.scoring import combine
from transferjax.scoring.methods import METHODS, RankConfig, RankInputs, score_method

ESTIMATOR_VARIANTS = {
    "cmi_knn_null": {"method": "cmi_knn_null"},
    "cmi_knn_pca16": {"method": "cmi_knn_pca16"},
    "cmi_knn_multik": {"method": "cmi_knn", "ks": (2, 3, 5)},
}
CONSENSUS = {
    "consensus3": ("cmi_knn", "mi_knn", "knn_accuracy"),
    "consensus6": ("cmi_knn", "knn_accuracy", "linear_probe", "shrinkage_h_score",
                   "leep", "logme"),
}
LEARNED_MEMBERS = ("cmi_knn", "mi_knn", "cmi_binned", "knn_accuracy", "linear_probe",
                   "leep", "nce", "shrinkage_h_score", "logme", "nleep", "gbc",
                   "transrate", "sfda", "source_train_acc", "source_n_classes",
                   "source_n_images")
CANDIDATES = (("cmi_knn",) + tuple(ESTIMATOR_VARIANTS) + tuple(CONSENSUS)
              + ("learned_loto",))


def _inputs(path: str) -> RankInputs:
  d = tio.load_npz(path)
  metrics = {k[len("metric_"):]: d[k] for k in d if k.startswith("metric_")}
  return RankInputs(labels=d["labels"], t=d["t"], features=d["features"],
                    source_logits=d["source_logits"],
                    source_num_classes=d["source_num_classes"], folds=d["folds"],
                    source_metrics=metrics)


def estimator_scores(record: dict, num_splits: int, base: RankConfig) -> dict:
  """Scores of ``ESTIMATOR_VARIANTS`` on one setting (mean over splits; cached)."""
  path = os.path.join(record["workdir"], "scores", "variants.json")
  if os.path.exists(path):
    return {k: np.asarray(v) for k, v in tio.read_json(path).items()}
  out = {}
  for name, spec in ESTIMATOR_VARIANTS.items():
    per_split = []
    for s in range(num_splits):
      inp = _inputs(os.path.join(record["workdir"], "scores", f"inputs_{s}.npz"))
      cfg = dataclasses.replace(base, method=spec["method"], seed=base.seed + s)
      ks = spec.get("ks", (cfg.k,))
      per_split.append(np.mean([score_method(inp, dataclasses.replace(cfg, k=k))
                                for k in ks], axis=0))
    out[name] = np.mean(per_split, axis=0)
  tio.write_json(path, out)
  return out


def _z(record):
  return suite_board.zscore_truth(record["truth"], record["no_transfer"])


def add_candidates(records: list[dict], num_splits: int,
                   base: RankConfig = RankConfig()) -> None:
  """Adds every candidate's scores to each record (``learned_loto``: fit on the
  dev settings of other targets; confirm settings: fit on all dev settings)."""
  for r in records:
    t0 = time.time()
    r["scores"].update(estimator_scores(r, num_splits, base))
    for name, members in CONSENSUS.items():
      r["scores"][name] = combine.rank_consensus(r["scores"], members)
    print(f"   candidates for {r['target']}@{r['zoo']}: {time.time() - t0:.0f}s",
          flush=True)
  dev = [r for r in records if r["role"] == "dev"]
  for r in records:
    train = [d for d in dev if d["target"] != r["target"]]
    if not train:     # no other dev target yet: the learned ranker has no data
      r["scores"]["learned_loto"] = np.zeros(len(r["truth"]))
      continue
    ranker = combine.LearnedRanker(LEARNED_MEMBERS).fit(
        [(d["scores"], _z(d)) for d in train])
    r["scores"]["learned_loto"] = ranker.predict(r["scores"])
    r["learned_coef"] = dict(zip(LEARNED_MEMBERS, ranker.coef.round(4).tolist()))


def choose_and_confirm(records: list[dict], baselines: list[str], *,
                       pool_size: int, num_pools: int,
                       choose_from: str = "candidates") -> dict:
  """Step 2 and 3 of the protocol; returns the dev board, the choice and the
  confirmation comparisons.

  ``choose_from``: "candidates" chooses among ``CANDIDATES`` only; "all" among
  every method on the board (the candidates and every baseline), so a plain
  metric that leads on the dev settings is the one put to the confirmation test.
  """
  if choose_from not in ("candidates", "all"):
    raise ValueError(f"choose_from={choose_from!r}: use 'candidates' or 'all'.")
  methods = list(dict.fromkeys(list(CANDIDATES) + list(baselines)))
  res = suite_board.leaderboard(records, methods, pool_size=pool_size,
                                num_pools=num_pools)
  dev_board = res["boards"]["dev"]["board"]
  pool = CANDIDATES if choose_from == "candidates" else methods
  cand_rows = [b for b in dev_board if b["method"] in pool]
  chosen = max(cand_rows, key=lambda b: np.nan_to_num(b["subpool_tau_mean"], nan=-9))
  chosen = chosen["method"]
  confirm = {}
  for role in [r for r in ("confirm", "dev", "all") if r in res["boards"]]:
    confirm[role] = {m: suite_board.compare(res, records, chosen, m, role)
                     for m in methods if m != chosen}
  wins = {role: all(c["lo"] > 0 for c in comp.values())
          for role, comp in confirm.items()}
  return {"chosen": chosen, "choose_from": choose_from, "wins": wins,
          "comparisons": confirm, "boards": res["boards"], "methods": methods}
