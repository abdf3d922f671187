r"""Run an ``experiments.*`` module as one process of a hand-launched multi-process job.

``--distributed`` calls ``jax.distributed.initialize()`` with no arguments. JAX then
finds the coordinator, the process count and this process's id by itself only on
Cloud TPU VMs, under Slurm, under Open MPI (``mpirun``) and on Kubernetes; from
the environment it reads just ``JAX_COORDINATOR_ADDRESS`` (and
``JAX_LOCAL_DEVICE_IDS``). For any other launch (e.g. ``ssh`` to each GPU node),
start every process with this wrapper instead::

  JAX_COORDINATOR_ADDRESS=10.0.0.1:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 \
      python scripts/launch.py experiments.train_sources --num_tasks=500 \
      --workdir=/shared/zoo

It calls ``jax.distributed.initialize(coordinator_address, num_processes,
process_id)`` from those variables, then runs the module with the remaining
arguments (without ``--distributed``: the runtime is initialized already; the
wrapper drops the flag if given). ``JAX_CPU_COLLECTIVES=gloo`` selects CPU
collectives, for a multi-process rehearsal on one machine without accelerators
(docs/notes/reach.md).
"""
from __future__ import annotations

import os
import runpy
import sys


def _env_int(name: str) -> int:
  value = os.environ.get(name)
  if value is None or not value.strip().isdigit():
    raise SystemExit(f"scripts/launch.py: set {name} to a non-negative integer "
                     f"(got {value!r}); see the docstring of scripts/launch.py.")
  return int(value)


def main(argv: list[str]) -> None:
  if len(argv) < 2 or argv[1].startswith("-"):
    raise SystemExit("usage: python scripts/launch.py MODULE [FLAGS...], e.g. "
                     "experiments.train_sources --workdir=/shared/zoo")
  address = os.environ.get("JAX_COORDINATOR_ADDRESS")
  if not address or ":" not in address:
    raise SystemExit("scripts/launch.py: set JAX_COORDINATOR_ADDRESS=host:port "
                     "(process 0's address, a free port; the same on every "
                     f"process); got {address!r}.")
  num_processes = _env_int("JAX_NUM_PROCESSES")
  process_id = _env_int("JAX_PROCESS_ID")
  import jax  # pylint: disable=g-import-not-at-top  (after the checks: fast errors)
  if os.environ.get("JAX_CPU_COLLECTIVES"):
    jax.config.update("jax_cpu_collectives_implementation",
                      os.environ["JAX_CPU_COLLECTIVES"])
  jax.distributed.initialize(coordinator_address=address,
                             num_processes=num_processes, process_id=process_id)
  print(f"process {jax.process_index()}/{jax.process_count()}: "
        f"{jax.local_device_count()} local of {jax.device_count()} devices",
        file=sys.stderr, flush=True)
  module = argv[1]
  flags = [a for a in argv[2:] if a not in ("--distributed", "--distributed=true",
                                            "--distributed=True")]
  sys.argv = [module] + flags
  runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
  main(sys.argv)
