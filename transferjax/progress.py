"""Progress bars for long loops (tqdm on stderr, process 0 only).

A bar is shown while a loop runs and removed when it ends (the loop's own log
line stays). ``TRANSFERJAX_PROGRESS=0`` turns bars off (e.g. in CI logs).
"""
from __future__ import annotations

import os

import jax
from tqdm.auto import tqdm


def enabled() -> bool:
  """Whether bars are shown: process 0 and not turned off by the environment."""
  return (os.environ.get("TRANSFERJAX_PROGRESS", "1") != "0"
          and jax.process_index() == 0)


def bar(total: int, desc: str, unit: str = "it") -> tqdm:
  """A tqdm bar of ``total`` units that disappears when closed."""
  return tqdm(total=int(total), desc=desc, unit=unit, leave=False,
              mininterval=1.0, dynamic_ncols=True, disable=not enabled())
