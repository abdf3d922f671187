#!/bin/bash
# usage: scripts/scale500/chain.sh spots|limited -- after the zoo: ground truth and rankings side by side, then evaluation.
set -u
cd /work/wt/scale500
export PYTHONPATH=$PWD
E=$1; W=runs/paper_${E}_500
EXTRA=""; [ "$E" = limited ] && EXTRA="--max_per_class=8"
FLAGS="--experiment=spots --num_sources=500 --max_classes=0 $EXTRA --num_splits=1 --num_seeds=2 --methods=cmi_knn,cmi_knn_max,cmi_knn_unscaled,cmi_knn_pca16,cmi_binned,mi_knn,source_train_acc,source_n_classes,linear_probe,logme,leep,nce,h_score,gbc,transrate,sfda,rbm --workdir=$W"
while [ ! -s runs/logs/${E}_zoo.time ]; do sleep 20; done
echo "zoo done $(date -u)"
/usr/bin/time -v -o runs/logs/${E}_rank.time python scripts/scale500/rank_only.py $FLAGS > runs/logs/${E}_rank.log 2>&1 &
RP=$!
/usr/bin/time -v -o runs/logs/${E}_gt.time python -m experiments.transfer \
  --zoo=$W/zoo --workdir=$W --target=spots --fraction=0.1 --num_splits=1 --num_seeds=2 \
  > runs/logs/${E}_gt.log 2>&1 || echo "gt failed $(date -u)"
echo "gt done $(date -u)"
wait $RP || echo "rank failed $(date -u)"
echo "rank done $(date -u)"
/usr/bin/time -v -o runs/logs/${E}_study.time python -m experiments.paper $FLAGS \
  > runs/logs/${E}_study.log 2>&1 || { echo "study failed $(date -u)"; exit 1; }
echo "study done $(date -u)"
