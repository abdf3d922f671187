#!/usr/bin/env bash
# Train the paper-scale zoo (500 source CNNs) on one GPU host or several.
#
# NOT RUN ON A GPU BY US (no GPU here). The one-host path is the ordinary
# command; the multi-process path was rehearsed on CPU with 2 processes x 2
# devices (MODE=node below with JAX_CPU_COLLECTIVES=gloo), bit-identical to 1
# process x 4 devices (docs/notes/reach.md).
#
#   bash scripts/multi_gpu_train_sources.sh single          # one host, all its GPUs
#   sbatch --nodes=2 --ntasks-per-node=8 --gpus-per-task=1 \
#       scripts/multi_gpu_train_sources.sh slurm            # Slurm: one task per GPU
#   # by hand, on each of N nodes (process 0's address in COORDINATOR):
#   COORDINATOR=10.0.0.1:1234 NUM_NODES=2 NODE_RANK=0 \
#       bash scripts/multi_gpu_train_sources.sh node        # on node 0
#   COORDINATOR=10.0.0.1:1234 NUM_NODES=2 NODE_RANK=1 \
#       bash scripts/multi_gpu_train_sources.sh node        # on node 1
#
# One host: nothing special. The zoo's "models" mesh axis spans jax.devices(),
# i.e. every local GPU (restrict with CUDA_VISIBLE_DEVICES); chunks are split
# evenly over them.
#
# Several hosts: every process runs the same command and must see the same
# --workdir (NFS or another shared filesystem: all processes read it to find the
# finished chunks; only process 0 writes the JSON records). `--distributed` calls
# jax.distributed.initialize() with no arguments, which JAX can fill in by itself
# under Slurm, Open MPI (mpirun) and Kubernetes; there it starts one process per
# GPU by default (local_device_ids = the local rank). For any other launch, JAX
# reads only JAX_COORDINATOR_ADDRESS from the environment, not the process count
# or id, so MODE=node goes through scripts/launch.py, which passes
# JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID to
# jax.distributed.initialize() (one process per node, owning all its GPUs).
#
# Resume: rerun the same command with the same WORKDIR (after a crash or a
# preempted allocation); finished chunks are restored, not retrained.
set -euo pipefail

cd "$(dirname "$0")/.."
WORKDIR=${WORKDIR:-runs/zoo500}
NUM_TASKS=${NUM_TASKS:-500}
PY=${PYTHON:-python}
# --max_per_class=0: every image of each class (the paper's setting). The chunk
# size follows from --memory_budget_mb per device (~75 MB per lenet20 model at
# batch 64; the automatic chunk is capped at 64 models per device).
TRAIN_FLAGS=${TRAIN_FLAGS:---max_per_class=0 --epochs=15 --memory_budget_mb=16384}

case "${1:-}" in
  single)
    exec "$PY" -m experiments.train_sources --num_tasks="$NUM_TASKS" \
      --workdir="$WORKDIR" $TRAIN_FLAGS
    ;;
  slurm)
    # Inside an allocation: srun starts SLURM_NTASKS processes; JAX reads the
    # coordinator, process count and id from Slurm's variables.
    exec srun "$PY" -m experiments.train_sources --distributed \
      --num_tasks="$NUM_TASKS" --workdir="$WORKDIR" $TRAIN_FLAGS
    ;;
  node)
    : "${COORDINATOR:?set COORDINATOR=host:port of node 0 (same on every node)}"
    : "${NUM_NODES:?set NUM_NODES}"
    : "${NODE_RANK:?set NODE_RANK (0 .. NUM_NODES-1; 0 runs the coordinator)}"
    export JAX_COORDINATOR_ADDRESS=$COORDINATOR JAX_NUM_PROCESSES=$NUM_NODES \
      JAX_PROCESS_ID=$NODE_RANK
    exec "$PY" scripts/launch.py experiments.train_sources \
      --num_tasks="$NUM_TASKS" --workdir="$WORKDIR" $TRAIN_FLAGS
    ;;
  *)
    sed -n '2,35p' "$0"
    exit 64
    ;;
esac
