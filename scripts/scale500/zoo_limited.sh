#!/bin/bash
cd /work/wt/scale500
export PYTHONPATH=$PWD
/usr/bin/time -v -o runs/logs/limited_zoo.time python -m experiments.train_sources \
  --dataset=scenes --num_tasks=500 --image_size=9 --arch=spot9 --epochs=15 \
  --max_per_class=8 --max_classes=0 --workdir=runs/paper_limited_500/zoo
