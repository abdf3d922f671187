"""Entry-point helper: a user error becomes one clear line, not a traceback."""
from __future__ import annotations

import functools
import logging
import os
import sys

import jax

from transferjax.errors import TrainingError, TransferJaxError


def use_cpu_cores() -> int | None:
  """One JAX CPU device per core, so CPU work can be split over cores.

  XLA:CPU runs one program on one device with little parallelism inside the
  small per-model ops of a zoo step; with a device per core the zoo trainer
  splits its models over them (``shard_map``), 1.7x on 2 cores
  (docs/notes/speed.md). Done by every ``experiments.*`` entry point before
  JAX starts; a no-op when the user chose already (``XLA_FLAGS`` with
  ``--xla_force_host_platform_device_count``, or ``jax_num_cpu_devices``), or
  with ``TRANSFERJAX_CPU_DEVICES=N`` (``1``: off). Accelerators are unaffected.

  Returns:
    The CPU device count set, or None if left as it was.
  """
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return None
  if jax.config.jax_num_cpu_devices != -1:
    return None
  count = int(os.environ.get("TRANSFERJAX_CPU_DEVICES", os.cpu_count() or 1))
  if count <= 1:
    return None
  try:
    jax.config.update("jax_num_cpu_devices", count)
  except RuntimeError as e:  # JAX already started: keep its devices.
    logging.info("CPU device count unchanged (%s)", e)
    return None
  return count


# Flags that name an output folder; checked before an entry point does any work.
OUTPUT_FLAGS = ("workdir",)


def check_output_flags() -> None:
  """``io.check_output_dir`` on every output-folder flag that is set (a
  default derived later, e.g. rank's ``<zoo>/rank/<target>``, is checked by the
  library ``run`` that derives it)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from transferjax import io  # pylint: disable=g-import-not-at-top
  for name in OUTPUT_FLAGS:
    if name in flags.FLAGS and flags.FLAGS[name].value:
      io.check_output_dir(flags.FLAGS[name].value, f"--{name}")


def guard(main):
  """Wraps an absl ``main``: checks the output folders first (``check_output_flags``);
  TransferJaxError/TrainingError -> message, exit 2."""

  @functools.wraps(main)
  def wrapped(argv):
    use_cpu_cores()
    try:
      check_output_flags()
      return main(argv)
    except (TransferJaxError, TrainingError) as e:
      print(f"error ({type(e).__name__}): {e}", file=sys.stderr)
      sys.exit(2)

  return wrapped
