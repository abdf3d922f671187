"""Entry-point helper: a user error becomes one clear line, not a traceback."""
from __future__ import annotations

import functools
import sys

from transferjax.errors import TrainingError, TransferJaxError


def guard(main):
  """Wraps an absl ``main``: TransferJaxError/TrainingError -> message, exit 2."""

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except (TransferJaxError, TrainingError) as e:
      print(f"error ({type(e).__name__}): {e}", file=sys.stderr)
      sys.exit(2)

  return wrapped
