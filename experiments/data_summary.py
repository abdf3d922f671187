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

import dataclasses
import os
import time
from typing import Any, Sequence

from absl import app
from absl import flags
import numpy as np

from transferjax import io
from transferjax.data import (display_name, load_dataset, load_target, paper_split,
                              split_class_counts, split_sizes_report)

_WORKDIR = flags.DEFINE_string("workdir", "runs/data_summary", "Output folder.")
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", 20, "Image side for every data set except spots (native 9).")
_DATASETS = flags.DEFINE_list("datasets", ["mnist", "scenes", "digits", "faces", "spots"],
                              "Data sets to summarise.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None,
                                 "Cache folder (default $TRANSFERJAX_CACHE or "
                                 "~/.cache/transferjax).")


@dataclasses.dataclass(frozen=True)
class Config:
  workdir: str = "runs/data_summary"
  image_size: int = 20
  datasets: tuple[str, ...] = ("mnist", "scenes", "digits", "faces", "spots")
  cache_dir: str | None = None
  examples_per_row: int = 10
  rows: int = 4
  split_target: str = "mnist:4,9"
  split_fraction: float = 0.05


def _options(name: str, config: Config) -> dict[str, Any]:
  opts: dict[str, Any] = {}
  if name != "spots":  # spots is natively 9x9, as in the paper.
    opts["image_size"] = config.image_size
  if name in ("mnist", "scenes") and config.cache_dir:
    opts["cache_dir"] = config.cache_dir
  return opts


def _example_grid(ds, path: str, config: Config) -> None:
  """A rows x cols grid: each row a different class, one example per cell."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  classes = [c for c in range(ds.num_classes) if np.any(ds.labels == c)]
  classes = sorted(rng.choice(classes, size=min(config.rows, len(classes)),
                              replace=False).tolist())
  cols = config.examples_per_row
  fig, axes = plt.subplots(len(classes), cols, figsize=(cols * 0.9, len(classes) * 1.0),
                           squeeze=False)
  for r, c in enumerate(classes):
    rows = np.flatnonzero(ds.labels == c)
    pick = rng.choice(rows, size=min(cols, len(rows)), replace=False)
    for j in range(cols):
      ax = axes[r, j]
      ax.axis("off")
      if j < len(pick):
        ax.imshow(ds.images[pick[j], ..., 0], cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
    axes[r, 0].set_title(ds.class_names[c], fontsize=7, loc="left")
  fig.suptitle(f"{display_name(ds)}: {ds.num_examples} images, {ds.num_classes} "
               f"classes, {ds.image_size}x{ds.image_size}", fontsize=9)
  io.save_figure(fig, path)


def run(config: Config) -> dict[str, Any]:
  """Loads, prints and plots each data set; returns (and writes) the summary."""
  os.makedirs(config.workdir, exist_ok=True)
  summary: dict[str, Any] = {"config": dataclasses.asdict(config), "datasets": {}}
  for name in config.datasets:
    start = time.perf_counter()
    ds = load_dataset(name, **_options(name, config))
    seconds = time.perf_counter() - start
    counts = ds.class_counts()
    shown = ", ".join(f"{ds.class_names[c]}: {counts[c]}"
                      for c in range(min(4, ds.num_classes)))
    print(f"{display_name(ds):>18}: {ds.num_examples:6d} images, {ds.num_classes:4d} "
          f"classes, {ds.image_size}x{ds.image_size}, per class min/max "
          f"{counts.min()}/{counts.max()} ({shown}, ...)  [{seconds:.1f} s]")
    png = os.path.join(config.workdir, f"examples_{name}.png")
    _example_grid(ds, png, config)
    summary["datasets"][name] = {
        "display_name": display_name(ds), "num_examples": ds.num_examples,
        "num_classes": ds.num_classes, "image_size": ds.image_size,
        "synthetic": bool(ds.metadata.get("synthetic", False)),
        "class_counts_min": int(counts.min()), "class_counts_max": int(counts.max()),
        "first_class_counts": {ds.class_names[c]: int(counts[c])
                               for c in range(min(10, ds.num_classes))},
        "pixel_mean": float(ds.images.mean()), "load_seconds": seconds,
        "source": ds.metadata.get("source"), "examples_png": png}
  target_opts = {"image_size": config.image_size}
  if config.cache_dir:
    target_opts["cache_dir"] = config.cache_dir
  split = paper_split(load_target(config.split_target, **target_opts),
                      fraction=config.split_fraction, seed=0)
  print(f"\n{config.split_target} paper split at {config.split_fraction:.0%} (seed 0): "
        f"{split.sizes()}\n{split_sizes_report(split)}")
  summary["split"] = {"target": config.split_target, "fraction": config.split_fraction,
                      "sizes": split.sizes(), "per_class": split_class_counts(split)}
  io.write_json(os.path.join(config.workdir, "summary.json"), summary)
  return summary


def main(argv: Sequence[str]) -> None:
  del argv
  config = Config(workdir=_WORKDIR.value, image_size=_IMAGE_SIZE.value,
                  datasets=tuple(_DATASETS.value), cache_dir=_CACHE_DIR.value)
  start = time.perf_counter()
  run(config)
  print(f"data_summary: {time.perf_counter() - start:.1f} s; wrote {config.workdir}")


if __name__ == "__main__":
  app.run(main)
