#!/bin/bash
# The paper's 500-source experiments on the spots target, every stage resumable
# (docs/notes/scale500.md):
#   scripts/scale500/chain.sh spots     # Fig. 6: 500 scene sources, 2-171 classes, 50 img/class
#   scripts/scale500/chain.sh limited   # Fig. 10: the same tasks with 8 img/class
# Stages: zoo (train_sources; finished chunks are restored) -> ground truth (experiments.transfer,
# finished 64-model chunks restored) beside the rankings (rank_only.py) -> experiments.paper
# (reuses all three; writes report.md, evaluation.json, transfer.csv, figures/). Each stage runs
# under /usr/bin/time -v; logs and timings go to runs/logs/. Rerun the same command to resume.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD
E=$1; W=runs/paper_${E}_500; mkdir -p runs/logs
case $E in spots) PER=50;; limited) PER=8;; *) echo "usage: $0 spots|limited"; exit 2;; esac
M=cmi_knn,cmi_knn_max,cmi_knn_unscaled,cmi_knn_pca16,cmi_binned,mi_knn,source_train_acc,source_n_classes,linear_probe,logme,leep,nce,h_score,gbc,transrate,sfda,rbm
FLAGS="--experiment=spots --num_sources=500 --max_classes=0 --max_per_class=$PER --num_splits=1 --num_seeds=2 --methods=$M --workdir=$W"
/usr/bin/time -v -o runs/logs/${E}_zoo.time python -m experiments.train_sources \
  --dataset=scenes --num_tasks=500 --image_size=9 --arch=spot9 --epochs=15 \
  --max_per_class=$PER --max_classes=0 --workdir=$W/zoo >> runs/logs/${E}_zoo.log 2>&1 \
  || { echo "zoo failed $(date -u)"; exit 1; }
echo "zoo done $(date -u)"
/usr/bin/time -v -o runs/logs/${E}_rank.time python scripts/scale500/rank_only.py $FLAGS \
  >> runs/logs/${E}_rank.log 2>&1 &
RP=$!
/usr/bin/time -v -o runs/logs/${E}_gt.time python -m experiments.transfer \
  --zoo=$W/zoo --workdir=$W --target=spots --fraction=0.1 --num_splits=1 --num_seeds=2 \
  >> runs/logs/${E}_gt.log 2>&1 || { echo "gt failed $(date -u)"; wait $RP; exit 1; }
echo "gt done $(date -u)"
wait $RP || { echo "rank failed $(date -u)"; exit 1; }
echo "rank done $(date -u)"
/usr/bin/time -v -o runs/logs/${E}_study.time python -m experiments.paper $FLAGS \
  >> runs/logs/${E}_study.log 2>&1 || { echo "study failed $(date -u)"; exit 1; }
echo "study done $(date -u): copy $W/{report.md,evaluation.json,transfer.csv,figures} to results/paper_${E}_500/"
