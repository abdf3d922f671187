r"""Seconds to fine-tune q sources x S seeds: vmapped vs one model at a time.

Both sides are ``transferjax.transfer.finetune.finetune_sources`` on the same
target split, sources, seeds and ``FitConfig``, in the same run:

* ``vmap`` (stacked): the library's default, ``model_chunk`` models per compiled
  call (every source x seed, plus the S no-transfer nets, train together in
  ``fit_models`` on the many-model engine with per-model early stopping; on a
  CPU one JAX device per core, each looping over its share of the models);
* ``sequential``: ``model_chunk=1``, i.e. one ``fit_models`` call with a stack of
  one model per (source, seed): what a loop over models costs. It runs the first
  ``--seq_max_sources`` sources only (the per-model cost does not depend on q);
  its total for all models is extrapolated from its per-model time.

Each side first runs a warm-up (same shapes, one epoch) so the timed runs exclude
compilation; the warm-up's seconds are reported as ``warmup_s``. Then the sides
take turns ``--repeats`` times and each reports its best run (``runs_s`` lists
all); the summary records the load average. The models both
sides trained are compared (test AUC, epochs run), which checks that the two
compute the same thing. JSON lines::

  {"kind": "setup", ...}
  {"kind": "vmap", "models", "run_s", "warmup_s", "models_per_s", ...}
  {"kind": "sequential", "models", "run_s", "warmup_s", "models_per_s", ...}
  {"kind": "summary", "speedup", "max_abs_auc_diff", "epochs_agree", ...}

Commands::

  python -m benchmarks.finetune_speed                    # CPU: 16 sources x 1 seed
  # 64 models (63 sources + the no-transfer net), 2 alternating repeats:
  python -m benchmarks.finetune_speed --num_sources=63 --seq_max_sources=7 \
      --max_epochs=10 --repeats=2
  python -m benchmarks.finetune_speed --num_sources=500 --num_seeds=3  # GPU

Expected: identical AUCs and epochs on both sides; the speedups measured are in
docs/notes/engine.md.
Sources are random-init CNNs unless ``--zoo`` names a trained zoo (fine-tuning
speed does not depend on the weights, except through how soon early stopping
ends each model).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import numpy as np

from transferjax import cli, io
from transferjax.data import load_target, paper_split
from transferjax.transfer.finetune import finetune_sources, init_params_stack
from transferjax.transfer.fit import FitConfig


def source_stack(num_sources: int, zoo_dir: str | None, image_size: int,
                 seed: int = 0):
  """``[q, ...]`` source parameters: a trained zoo's first q (cycled), or random."""
  if zoo_dir:
    from transferjax.train import load_zoo  # pylint: disable=g-import-not-at-top
    zoo = load_zoo(zoo_dir)
    rows = np.arange(num_sources) % zoo.num_models
    return jax.tree.map(lambda a: np.asarray(a)[rows], zoo.params)
  keys = jax.random.split(jax.random.key(seed), num_sources)
  # Source heads are discarded by the transplant; their width does not matter.
  return jax.tree.map(np.asarray, init_params_stack("lenet20", 20, keys, image_size))


def _timed(params, split, num_seeds, cfg, model_chunk, root_key):
  t0 = time.perf_counter()
  out = finetune_sources(params, split, num_seeds=num_seeds, cfg=cfg,
                         root_key=root_key, model_chunk=model_chunk)
  return out, time.perf_counter() - t0


def _loadavg() -> list[float]:
  """1, 5 and 15 min load averages (timings on a loaded machine are noisy)."""
  try:
    return [float(x) for x in open("/proc/loadavg").read().split()[:3]]
  except OSError:
    return []


def bench(args) -> list[dict]:
  """Runs both sides; returns the JSON rows (setup, vmap, sequential, summary)."""
  backend = jax.default_backend()
  q = args.num_sources or (16 if backend == "cpu" else 500)
  q_seq = min(q, args.seq_max_sources or q)
  target = load_target(args.target, image_size=20)
  split = paper_split(target, fraction=args.fraction,
                      num_labeled=args.num_labeled, seed=0)
  cfg = FitConfig(max_epochs=args.max_epochs, patience=args.patience,
                  max_classes=max(2, split.train.num_classes),
                  batch_size=args.batch_size)
  warm_cfg = dataclasses.replace(cfg, max_epochs=1, budgets=())
  params = source_stack(q, args.zoo, 20)
  root = jax.random.key(args.seed)
  rows = [{"kind": "setup", "backend": backend,
           "devices": [str(d) for d in jax.devices()], "num_sources": q,
           "num_seeds": args.num_seeds, "seq_sources": q_seq,
           "split": split.sizes(), "fit": dataclasses.asdict(cfg),
           "model_chunk": args.model_chunk, "zoo": args.zoo}]

  # Warm-ups compile both shapes (the full chunk; a stack of one); then the
  # sides take turns --repeats times, so a change in a shared machine's load
  # hits both alike, and each side reports its best run.
  _, warm_vm = _timed(params, split, args.num_seeds, warm_cfg, args.model_chunk,
                      root)
  _, warm_sq = _timed(jax.tree.map(lambda a: a[:1], params), split, 1, warm_cfg, 1,
                      root)
  sub = jax.tree.map(lambda a: a[:q_seq], params)
  vm_s, sq_s = [], []
  for _ in range(args.repeats):
    vm, run_s = _timed(params, split, args.num_seeds, cfg, args.model_chunk, root)
    vm_s.append(run_s)
    sq, run_s = _timed(sub, split, args.num_seeds, cfg, 1, root)
    sq_s.append(run_s)
  models = (q + 1) * args.num_seeds
  rows.append({"kind": "vmap", "models": models, "run_s": min(vm_s),
               "runs_s": vm_s, "warmup_s": warm_vm,
               "models_per_s": models / min(vm_s),
               "epochs_mean": float(vm.epochs.mean()),
               "auc_mean": float(vm.auc.mean())})
  seq_models = (q_seq + 1) * args.num_seeds
  per_model = min(sq_s) / seq_models
  rows.append({"kind": "sequential", "models": seq_models, "run_s": min(sq_s),
               "runs_s": sq_s, "warmup_s": warm_sq, "models_per_s": 1.0 / per_model,
               "extrapolated_s_all_models": per_model * models,
               "epochs_mean": float(sq.epochs.mean()),
               "auc_mean": float(sq.auc.mean())})

  # Sources 0..q_seq-1 are the same models on both sides (key of (source i,
  # seed s): fold_in(fold_in(root, s), i)). The no-transfer nets are not
  # compared: their index (q vs q_seq) and so their key differ when q_seq < q.
  auc_diff = float(np.max(np.abs(vm.auc[:q_seq] - sq.auc)))
  epochs_agree = float(np.mean(vm.epochs[:q_seq] == sq.epochs))
  rows.append({"kind": "summary", "backend": backend, "num_sources": q,
               "num_seeds": args.num_seeds, "models": models,
               "vmap_s": rows[1]["run_s"],
               "sequential_s_extrapolated": rows[2]["extrapolated_s_all_models"],
               "speedup": rows[2]["extrapolated_s_all_models"] / rows[1]["run_s"],
               "max_abs_auc_diff": auc_diff, "epochs_agree": epochs_agree,
               "repeats": args.repeats, "loadavg": _loadavg()})
  return rows


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--num_sources", type=int, default=None,
                 help="q (default: 16 on CPU, 500 on an accelerator)")
  p.add_argument("--num_seeds", type=int, default=1, help="S seeds per source")
  p.add_argument("--max_epochs", type=int, default=20)
  p.add_argument("--patience", type=int, default=5)
  p.add_argument("--batch_size", type=int, default=16)
  p.add_argument("--target", default="mnist:4,9")
  p.add_argument("--fraction", type=float, default=0.05,
                 help="labeled share D_a (D_t + D_v) of the target")
  p.add_argument("--num_labeled", type=int, default=None,
                 help="absolute |D_a| (overrides --fraction)")
  p.add_argument("--model_chunk", type=int, default=64,
                 help="models per compiled call on the vmap side")
  p.add_argument("--seq_max_sources", type=int, default=None,
                 help="sources the sequential side runs (default: all)")
  p.add_argument("--zoo", default=None, help="trained zoo workdir (default: "
                 "random-init sources)")
  p.add_argument("--repeats", type=int, default=1,
                 help="timed runs per side, alternating; each side's best counts")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default=None, help="also write the JSON lines here")
  args = p.parse_args(argv)
  # One JAX CPU device per core, as every experiments.* entry point sets up:
  # the stacked side splits its models over them.
  cli.use_cpu_cores()
  rows = bench(args)
  lines = [json.dumps(r, default=float) for r in rows]
  for line in lines:
    print(line, flush=True)
  if args.out:
    io.write_text(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
  main()
