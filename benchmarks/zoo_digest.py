"""What verifying the per-chunk content digests costs when a zoo is loaded.

Writes a zoo of ``--models`` lenet20 models (random parameters, the real
checkpoint format: orbax chunks of ``--chunk`` models with digests, the real
``zoo_config.json`` / ``tasks.json``) without training it, then times
``load_zoo`` (restore + digest check + finiteness check) and, separately, the
digest computation alone (sha256 of every parameter leaf: the verification's
work), best of ``--repeats``.

  python -m benchmarks.zoo_digest              # 500 models, chunks of 64
  python -m benchmarks.zoo_digest --models 32  # smoke run

Prints one JSON line. docs/notes/integrity.md has the measured numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from transferjax import io
from transferjax.data.tasks import SourceTask, tasks_to_json
from transferjax.models import make_cnn
from transferjax.train import zoo as zoo_lib


def write_zoo(workdir: str, q: int, chunk: int, head: int = 20, seed: int = 0):
  """A zoo of ``q`` random lenet20 models in the format ``train_zoo`` writes."""
  shapes = jax.eval_shape(make_cnn("lenet20", head).init, jax.random.key(0),
                          jnp.zeros((1, 20, 20, 1)))["params"]
  rng = np.random.default_rng(seed)
  tasks = [SourceTask(i, "syn", (0, 1), [2 * i], [2 * i + 1]) for i in range(q)]
  record = {name: getattr(zoo_lib.ZooConfig(), name)
            for name in zoo_lib.DEFINING_FLAGS}
  record.update(conv_impl="im2col", pool_impl="reshape", model_loop="map",
                num_tasks=q, head_classes=head, chunk_size=chunk, pool_name="syn",
                pool_size=2 * q, pool_fingerprint="0")
  io.write_text(os.path.join(workdir, "tasks.json"), tasks_to_json(tasks))
  io.write_json(os.path.join(workdir, "zoo_config.json"), record)
  for k, positions in enumerate(zoo_lib._chunk_plan(tasks, chunk)):
    params = jax.tree.map(
        lambda s, c=len(positions): rng.standard_normal((c,) + s.shape).astype(
            np.float32) * 0.05, shapes)
    meta = {"chunk": k, "task_ids": [tasks[i].task_id for i in positions],
            "metrics": {"train_loss": np.zeros(len(positions))}}
    zoo_lib._save_chunk(workdir, k, params, meta, True)
  n_params = sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))
  return n_params


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--models", type=int, default=500)
  parser.add_argument("--chunk", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as workdir:
    t0 = time.perf_counter()
    n_params = write_zoo(workdir, args.models, args.chunk)
    write_s = time.perf_counter() - t0
    zoo_lib.load_zoo(workdir)  # Warm-up: imports, orbax, page cache.
    loads, digests = [], []
    for _ in range(args.repeats):
      t0 = time.perf_counter()
      zoo = zoo_lib.load_zoo(workdir)
      loads.append(time.perf_counter() - t0)
      # The verification's own work: the same sha256 over every leaf that
      # _load_chunk computes for the chunks (here on the whole stack at once).
      t0 = time.perf_counter()
      zoo_lib.params_digest(zoo.params)
      digests.append(time.perf_counter() - t0)
  size_mb = args.models * n_params * 4 / 2**20
  print(json.dumps({
      "benchmark": "zoo_digest", "models": args.models, "chunk": args.chunk,
      "params_per_model": n_params, "param_mb": round(size_mb, 1),
      "write_s": round(write_s, 2),
      "load_zoo_s": round(min(loads), 3),
      "digest_s": round(min(digests), 3),
      "digest_mb_per_s": round(size_mb / min(digests), 1),
      "digest_share_of_load": round(min(digests) / min(loads), 3),
      "backend": jax.default_backend()}))


if __name__ == "__main__":
  main()
