r"""Summarises every built-in data set and the MNIST 4-vs-9 paper split.

Command (expected runtime on a 2-core CPU: ~20 s with an empty cache, where
building the scenes pool takes ~13 s; ~5 s once cached)::

  python -m experiments.data_summary --workdir=runs/data_summary \
      [--image_size=20 --datasets=mnist,scenes,digits,faces,spots]

Expected result: printed sizes (mnist 5,000 x 10 classes, scenes 17,100 x 171,
digits 1,797 x 10, faces 200 x 2, spots (synthetic) 6,000 x 2 at 9x9), the
MNIST 4-vs-9 split at 5 % (D_t 42 / D_v 8 / D_e 950), one PNG of example
images per data set and ``summary.json`` in the workdir.
"""
from __future__ import annotations

import time
from typing import Sequence

from transferjax import cli
from absl import app
from absl import flags

from transferjax.data.summary import Config, run

_WORKDIR = flags.DEFINE_string("workdir", "runs/data_summary", "Output folder.")
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", 20, "Image side for every data set except spots (native 9).")
_DATASETS = flags.DEFINE_list("datasets", ["mnist", "scenes", "digits", "faces", "spots"],
                              "Data sets to summarise.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None,
                                 "Cache folder (default $TRANSFERJAX_CACHE or "
                                 "~/.cache/transferjax).")


def main(argv: Sequence[str]) -> None:
  del argv
  config = Config(workdir=_WORKDIR.value, image_size=_IMAGE_SIZE.value,
                  datasets=tuple(_DATASETS.value), cache_dir=_CACHE_DIR.value)
  start = time.perf_counter()
  run(config)
  print(f"data_summary: {time.perf_counter() - start:.1f} s; wrote {config.workdir}")


if __name__ == "__main__":
  app.run(cli.guard(main))
