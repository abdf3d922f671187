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


_OWN_CODE = tuple(os.path.dirname(os.path.abspath(p)) + os.sep for p in (
    __file__, os.path.join(os.path.dirname(os.path.dirname(__file__)),
                           "experiments", "x")))


class _OwnInfoOnly(logging.Filter):
  """Passes WARNING and above from anywhere; INFO only from transferjax's own
  modules (library INFO, e.g. orbax's ~30 lines per checkpoint, is dropped)."""

  def filter(self, record: logging.LogRecord) -> bool:
    return (record.levelno >= logging.WARNING
            or os.path.abspath(record.pathname).startswith(_OWN_CODE))


def configure_logging(default: str = "info") -> None:
  """The entry points' logging: ``--verbosity`` when given, else ``default``.

  With the default "info" our own progress lines (per chunk, per step, with
  ETAs) show and other libraries' INFO does not; ``--verbosity=0`` shows every
  library's INFO too, ``--verbosity=-1`` only warnings. "warning" keeps an
  entry point to its own printed lines.
  """
  from absl import flags
  from absl import logging as absl_logging
  handler = absl_logging.get_absl_handler()
  for f in [f for f in handler.filters if isinstance(f, _OwnInfoOnly)]:
    handler.removeFilter(f)
  if "verbosity" in flags.FLAGS and flags.FLAGS["verbosity"].present:
    return
  absl_logging.set_verbosity(default)
  if default == "info":
    handler.addFilter(_OwnInfoOnly())


def _bad_override(argv: list[str]) -> str | None:
  """The first ``--config.a.b=V`` of ``argv`` whose field the config lacks,
  with the closest field and the fix; None if every path exists."""
  import difflib  # pylint: disable=g-import-not-at-top
  from transferjax import config as config_lib  # pylint: disable=g-import-not-at-top
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if spec is None:
    return None
  try:
    cfg = config_lib.load(spec)
  except Exception as e:  # pylint: disable=broad-except
    return f"--config={spec}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
  for arg in argv:
    if not arg.startswith("--config."):
      continue
    path = arg[len("--config."):].split("=", 1)[0]
    node, where = cfg, "config"
    for key in path.split("."):
      keys = list(node.keys()) if hasattr(node, "keys") else []
      if key not in keys:
        close = difflib.get_close_matches(key, keys, n=1)
        fix = (f"did you mean --{where}.{close[0]}? " if close else "")
        return (f"--config.{path}: {where} has no field {key!r}; {fix}"
                f"fields of {where}: {', '.join(sorted(keys)) or '(none: a value)'}.")
      node, where = node[key], f"{where}.{key}"
  return None


def _bad_value(argv: list[str], error: Exception) -> str | None:
  """For a ``--config.a.b=V`` that absl could not parse: the field's type and
  current value, and how to give one."""
  import re  # pylint: disable=g-import-not-at-top
  from transferjax import config as config_lib  # pylint: disable=g-import-not-at-top
  m = re.search(r"--config\.([\w.]+)=", str(error))
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if not m or spec is None:
    return None
  path = m.group(1)
  try:
    node = config_lib.load(spec)
    for key in path.split("."):
      node = node[key]
  except Exception:  # pylint: disable=broad-except
    return None
  given = next((a.split("=", 1)[1] for a in argv if a.startswith(f"--config.{path}=")),
               "?")
  if hasattr(node, "keys"):
    return (f"--config.{path}={given}: config.{path} is a section, not a value; set "
            f"its fields, e.g. --config.{path}.{sorted(node.keys())[0]}=...")
  kind = type(node).__name__
  article = "an" if kind[0] in "aeiou" else "a"
  return (f"--config.{path}={given}: config.{path} is {article} {kind} (now {node!r}); "
          f"give e.g. --config.{path}={node!r}"
          + (" (a tuple as a,b or '(a, b)')" if isinstance(node, tuple) else "") + ".")


def parse_flags(argv: list[str]) -> list[str]:
  """``app.run``'s ``flags_parser``: a bad flag or config override is one line.

  An unknown ``--config.a.b`` names the field, the closest one and the fields
  there are; a value of the wrong type names the flag and the type; exit 2.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    message = _bad_override(argv) or _bad_value(argv, e) or str(e).splitlines()[0]
  except Exception as e:  # pylint: disable=broad-except
    # ml_collections raises AttributeError/KeyError/TypeError for overrides of
    # fields the config does not have or cannot take; find which and say so.
    message = _bad_override(argv) or f"{type(e).__name__}: {str(e).splitlines()[0]}"
  print(f"error (ConfigError): {message}", file=sys.stderr)
  sys.exit(2)


def guard(main, *, verbosity: str = "info"):
  """Wraps an absl ``main``: TransferJaxError/TrainingError -> message, exit 2.

  Also sets up CPU devices (``use_cpu_cores``) and logging
  (``configure_logging(verbosity)``, which ``--verbosity`` overrides), and checks
  the output folders before any work starts (``check_output_flags``).
  """

  @functools.wraps(main)
  def wrapped(argv):
    use_cpu_cores()
    configure_logging(verbosity)
    try:
      check_output_flags()
      return main(argv)
    except (TransferJaxError, TrainingError) as e:
      print(f"error ({type(e).__name__}): {e}", file=sys.stderr)
      sys.exit(2)

  return wrapped
