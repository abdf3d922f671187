"""Data summary: size, classes, image size and sample counts of every built-in
data set, the MNIST 4-vs-9 paper split, and a PNG grid of examples per data set.

``run(Config)`` is what ``python -m experiments.data_summary`` calls.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np

from transferjax import io
from transferjax.data import (display_name, load_dataset, load_target, paper_split,
                              split_class_counts, split_sizes_report)


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
  os.makedirs(io.check_output_dir(config.workdir), exist_ok=True)
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
