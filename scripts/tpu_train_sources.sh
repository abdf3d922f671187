#!/usr/bin/env bash
# Train the paper-scale zoo (500 source CNNs) on a Cloud TPU VM pod slice.
#
# NOT RUN BY US: we have no TPU access. The multi-process path it uses (every
# process runs the same command, jax.distributed.initialize(), one "models" mesh
# axis over all devices of all hosts, only process 0 writes the JSON records) was
# rehearsed on CPU with 2 processes x 2 devices (scripts/launch.py with gloo),
# giving a zoo bit-identical to 1 process x 4 devices (docs/notes/reach.md).
#
# Usage (from a machine with gcloud, authenticated):
#
#   export TPU_NAME=zoo-v4-32 ZONE=us-central2-b PROJECT=my-project
#   export REPO_URL=https://github.com/<owner>/transferjax
#   export BUCKET=my-bucket              # holds the workdir; survives preemption
#   bash scripts/tpu_train_sources.sh create   # optional: a (spot) v4-32 slice
#   bash scripts/tpu_train_sources.sh setup    # install jax[tpu], transferjax,
#                                              # mount gs://$BUCKET on every worker
#   bash scripts/tpu_train_sources.sh train    # the batch job (rerun = resume)
#   bash scripts/tpu_train_sources.sh status   # chunks done so far
#
# How it works:
# * `gcloud compute tpus tpu-vm ssh ... --worker=all --command=...` runs the SAME
#   command on every host of the slice (one JAX process per host, which owns
#   that host's 4 chips). `--distributed` makes `experiments.train_sources` call
#   `jax.distributed.initialize()` with no arguments: on Cloud TPU VMs JAX finds
#   the coordinator, process count and process id from the TPU metadata itself.
# * The zoo's "models" mesh axis spans jax.devices(), i.e. every chip of every
#   host; each chunk of models is split evenly over them (the chunk size is
#   rounded to a multiple of the device count).
# * Only process 0 writes zoo_config.json, tasks.json, the chunk markers and
#   metrics.json; the orbax chunk checkpoint is a collective save. Every host
#   READS the workdir (to see which chunks are done), so --workdir must be the
#   same shared path on every host: here a GCS bucket mounted with gcsfuse at
#   the same mount point everywhere (an NFS/Filestore mount works too). A
#   gs:// URL does not work: the trainer uses ordinary file operations.
# * Preemption: a finished chunk is a file in the bucket. After a spot/preemptible
#   slice is preempted, recreate it (create), rerun setup, and rerun train with
#   the same flags and WORKDIR: it restores the finished chunks and trains from
#   the first unfinished one. Different flags on the same WORKDIR are refused.
set -euo pipefail

: "${TPU_NAME:?set TPU_NAME (the TPU VM / pod slice name)}"
: "${ZONE:?set ZONE (e.g. us-central2-b)}"
PROJECT=${PROJECT:-$(gcloud config get-value project 2>/dev/null)}
ACCELERATOR_TYPE=${ACCELERATOR_TYPE:-v4-32}        # 4 hosts x 4 chips
RUNTIME_VERSION=${RUNTIME_VERSION:-tpu-ubuntu2204-base}
MOUNT=${MOUNT:-/mnt/transferjax}                   # same path on every host
WORKDIR=${WORKDIR:-$MOUNT/zoo500}
NUM_TASKS=${NUM_TASKS:-500}
# --max_per_class=0: every image of each class (the paper's setting); the
# chunk size follows from --memory_budget_mb (per device) unless --chunk_size.
TRAIN_FLAGS=${TRAIN_FLAGS:---max_per_class=0 --epochs=15 --memory_budget_mb=8192}

ssh_all() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --project="$PROJECT" \
    --worker=all --command="$1"
}

case "${1:-}" in
  create)
    # --spot: cheaper, may be preempted (then: create, setup, train again).
    gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE" \
      --project="$PROJECT" --accelerator-type="$ACCELERATOR_TYPE" \
      --version="$RUNTIME_VERSION" ${SPOT:+--spot}
    ;;
  setup)
    : "${REPO_URL:?set REPO_URL (the transferjax git repository)}"
    : "${BUCKET:?set BUCKET (a GCS bucket for the workdir)}"
    # jax[tpu] pulls libtpu from PyPI (old JAX releases needed
    # -f https://storage.googleapis.com/jax-releases/libtpu_releases.html).
    # gcsfuse comes from Google's apt repository; see the Cloud Storage FUSE
    # install docs if `apt-get install gcsfuse` does not find it.
    ssh_all "set -e
      pip install -U 'jax[tpu]' 'git+$REPO_URL'
      command -v gcsfuse >/dev/null || sudo apt-get install -y gcsfuse
      sudo mkdir -p $MOUNT && sudo chown \$USER $MOUNT
      mountpoint -q $MOUNT || gcsfuse --implicit-dirs $BUCKET $MOUNT
      python -c 'import jax; print(jax.default_backend(), jax.local_device_count())'"
    ;;
  train)
    # The same command on every host; rerunning it resumes. Logs go to each
    # host's ~/train_sources.log as well as the console.
    ssh_all "cd ~ && python -m experiments.train_sources --distributed \
      --num_tasks=$NUM_TASKS --workdir=$WORKDIR $TRAIN_FLAGS \
      2>&1 | tee -a ~/train_sources.log"
    ;;
  status)
    gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --project="$PROJECT" \
      --worker=0 --command="ls $WORKDIR/chunks | grep -c '\.json$' || true; \
        test -f $WORKDIR/metrics.json && echo 'zoo finished: $WORKDIR'"
    ;;
  *)
    sed -n '2,40p' "$0"
    exit 64
    ;;
esac
