"""Tests of the train_sources entry point: flags -> config, and a smoke run."""
import dataclasses

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

from experiments import train_sources
from transferjax.errors import ConfigError
from transferjax.train import ZooConfig, load_zoo, models_per_chunk, run


def _parse(*argv):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["train_sources", *argv])
  return train_sources.config_from_flags(flags.FLAGS)


@flagsaver.flagsaver
def test_flags_map_onto_the_frozen_config():
  assert _parse() == ZooConfig()
  cfg = _parse("--num_tasks=500", "--max_per_class=0", "--max_classes=0",
               "--learning_rate=0.01", "--conv_impl=xla", "--chunk_size=8")
  assert cfg == dataclasses.replace(ZooConfig(), num_tasks=500, max_per_class=None,
                                    max_classes=None, learning_rate=0.01,
                                    conv_impl="xla", chunk_size=8)
  smoke = _parse("--smoke")
  assert (smoke.num_tasks, smoke.max_per_class, smoke.epochs) == (4, 10, 1)
  with pytest.raises(dataclasses.FrozenInstanceError):
    smoke.epochs = 3  # type: ignore[misc]


def test_chunk_size_from_memory_budget_is_a_device_multiple():
  cfg = ZooConfig(memory_budget_mb=200)
  per_device = models_per_chunk(cfg, 20, 1)
  assert 1 <= per_device < 64
  assert models_per_chunk(cfg, 20, 4) == 4 * per_device
  assert models_per_chunk(dataclasses.replace(cfg, memory_budget_mb=2 * 200), 20,
                          1) >= 2 * per_device - 1
  assert models_per_chunk(dataclasses.replace(cfg, chunk_size=5), 20, 4) == 8
  with pytest.raises(ConfigError, match="chunk_size must be >= 0"):
    models_per_chunk(dataclasses.replace(cfg, chunk_size=-1), 20, 1)


@pytest.mark.slow
def test_run_on_digits_smoke(tmp_path):
  cfg = ZooConfig(dataset="digits", num_tasks=2, max_classes=3, max_per_class=6,
                  epochs=1, batch_size=8, steps_per_call=2)
  zoo = run(cfg, str(tmp_path))
  assert zoo.num_models == 2
  assert all(2 <= t.num_classes <= 3 for t in zoo.tasks)
  assert np.all(np.isfinite(zoo.metrics["train_loss"]))
  assert load_zoo(str(tmp_path)).num_models == 2
