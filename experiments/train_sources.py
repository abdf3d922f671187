r"""Train (or resume) a zoo of source CNNs, one per random class-subset task.

Command (the default zoo: 32 tasks of 2-20 scene-region classes, <= 50 images per
class, lenet20, 15 epochs of Adam 1e-3, batch 64):

  python -m experiments.train_sources --num_tasks=32 --dataset=scenes \
      --image_size=20 --epochs=15 --workdir=runs/zoo

Expected runtime: about 5 min on 2 shared CPU cores (measured:
docs/notes/zoo.md). Expected result: runs/zoo/{zoo_config.json, tasks.json,
chunks/, metrics.json}; training accuracy near 1 for every task and mean holdout
accuracy well above chance (1 / classes). Rerunning the same command resumes at the
first unfinished chunk; other flags on the same --workdir are refused.

Smoke run (seconds): add --smoke (4 tasks, 10 images per class, 1 epoch).
The paper's scale: --num_tasks=500 --max_per_class=0 (all images) on an
accelerator; --distributed for several hosts.
"""
from __future__ import annotations

import dataclasses

from transferjax import cli
from absl import app, flags, logging

import numpy as np

from transferjax.scoring.weak import weak_sources, weak_sources_message
from transferjax.train import ZooConfig, run

_D = ZooConfig()
FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/zoo", "Checkpoint / output folder.")
flags.DEFINE_string("dataset", _D.dataset, "Source pool (load_dataset name).")
flags.DEFINE_integer("num_tasks", _D.num_tasks, "Number of source tasks/models.")
flags.DEFINE_integer("image_size", _D.image_size, "Input side (lenet20: 20, spot9: 9).")
flags.DEFINE_integer("seed", _D.seed, "Task and training seed.")
flags.DEFINE_enum("arch", _D.arch, ["lenet20", "spot9"], "Architecture.")
flags.DEFINE_integer("min_classes", _D.min_classes, "Fewest classes per task.")
flags.DEFINE_integer("max_classes", _D.max_classes,
                     "Most classes per task and head width (0: all pool classes).")
flags.DEFINE_integer("max_per_class", _D.max_per_class,
                     "Images per class cap (0: all).")
flags.DEFINE_float("holdout_fraction", _D.holdout_fraction,
                   "Share of each class held out for source accuracy.")
flags.DEFINE_integer("epochs", _D.epochs, "Epochs over each task's rows.")
flags.DEFINE_integer("batch_size", _D.batch_size, "Minibatch size.")
flags.DEFINE_float("learning_rate", _D.learning_rate, "Adam learning rate.")
flags.DEFINE_enum("conv_impl", _D.conv_impl,
                  ["auto", "im2col", "xla", "patches", "xla_vjp", "pallas"],
                  "Convolution implementation. auto: the workdir's when "
                  "resuming, else xla_vjp on CPU (fastest with lax.map over "
                  "models) and im2col on accelerators (fastest under vmap). pallas: "
                  "Triton kernels without im2col patches (GPU only).")
flags.DEFINE_enum("pool_impl", _D.pool_impl, ["auto", "reshape", "flax", "fused"],
                  "Max-pool implementation. auto: the workdir's when resuming, "
                  "else reshape. fused: conv1 + ReLU + pool1 with conv1 "
                  "recomputed in the backward (a GPU lever; 0.84x on CPU).")
flags.DEFINE_enum("compute_dtype", _D.compute_dtype, ["float32", "bfloat16"],
                  "Dtype of convolutions and dense layers (float32 master "
                  "weights and loss); part of the zoo's identity.")
flags.DEFINE_integer("chunk_size", _D.chunk_size,
                     "Models per chunk (0: from --memory_budget_mb).")
flags.DEFINE_integer("memory_budget_mb", _D.memory_budget_mb,
                     "Per-device memory budget for the automatic chunk size.")
flags.DEFINE_integer("steps_per_call", _D.steps_per_call,
                     "Optimizer steps per jitted call (lax.scan length).")
flags.DEFINE_integer("unroll", _D.unroll, "lax.scan unroll factor.")
flags.DEFINE_enum("model_loop", _D.model_loop, ["auto", "vmap", "map"],
                  "Batch the models (vmap: accelerators) or loop over them in "
                  "the program (map: CPU); auto picks by backend.")
flags.DEFINE_bool("distributed", _D.distributed,
                  "Call jax.distributed.initialize() (multi-host).")
flags.DEFINE_bool("smoke", False, "Tiny run: 4 tasks, 10 images/class, 1 epoch.")


def config_from_flags(values) -> ZooConfig:
  """The frozen ``ZooConfig`` of parsed flag ``values``."""
  kwargs = {f.name: getattr(values, f.name) for f in dataclasses.fields(ZooConfig)}
  kwargs["max_classes"] = kwargs["max_classes"] or None
  kwargs["max_per_class"] = kwargs["max_per_class"] or None
  if values.smoke:
    kwargs.update(num_tasks=min(kwargs["num_tasks"], 4), max_per_class=10,
                  epochs=1)
  return ZooConfig(**kwargs)


def main(argv):
  del argv
  config = config_from_flags(FLAGS)
  zoo = run(config, FLAGS.workdir)
  print(f"zoo of {zoo.num_models} models in {FLAGS.workdir}: mean train acc "
        f"{zoo.metrics['train_accuracy'].mean():.3f}, mean holdout acc "
        f"{np.nanmean(zoo.metrics['holdout_accuracy']):.3f}")
  warning = weak_sources_message(
      weak_sources(zoo.tasks, zoo.metrics["holdout_accuracy"]), zoo.num_models,
      zoo.config)
  if warning:
    print(warning)


if __name__ == "__main__":
  app.run(cli.guard(main))
