"""The one interface every source model is scored through.

A source is anything that turns target images into penultimate features
``[n, d]`` (and, optionally, source-task logits ``[n, c]`` for LEEP, NCE and the
source-label methods). It states the input it expects (side, channels) and its
preprocessing; ``prepare_images`` turns the target's ``[0, 1]`` images into that
input. A feature-file source has no model: it holds one row per target image.

Sources come in groups (``SourceGroup``): a trained zoo, the models one Flax
factory returns, a folder of feature files. A group computes the outputs of
several of its members at once (the zoo: one vmapped call), which is how the
streaming scorer asks for them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from transferjax.data.preprocess import resize_keep_channels, to_channels
from transferjax.errors import ConfigError, DataError, EstimatorError


@dataclasses.dataclass(frozen=True)
class Preprocess:
  """What a source does to ``[0, 1]`` images before its first layer.

  Attributes:
    input_size: side of the square input it takes (None: any size, no resize).
    channels: 1 (gray) or 3 (RGB).
    mean, std: per-channel normalisation ``(x - mean) / std`` after resizing
      (``None``: the ``[0, 1]`` pixels are passed as they are).
  """
  input_size: int | None = None
  channels: int = 1
  mean: tuple[float, ...] | None = None
  std: tuple[float, ...] | None = None

  def __post_init__(self):
    if self.channels not in (1, 3):
      raise ConfigError(f"channels must be 1 or 3, got {self.channels!r}.")
    for name in ("mean", "std"):
      v = getattr(self, name)
      if v is not None and len(v) not in (1, self.channels):
        raise ConfigError(f"{name} has {len(v)} values for {self.channels} channels.")
    if self.std is not None and min(self.std) <= 0:
      raise ConfigError(f"std must be > 0, got {self.std}.")


def prepare_images(images: np.ndarray, pre: Preprocess, *, source: str = "source",
                   allow_upsample: bool = False) -> np.ndarray:
  """Target images ``[n, h, w, c]`` in ``[0, 1]`` -> the source's input.

  Resized (centre crop + bilinear) to ``pre.input_size``, converted to
  ``pre.channels`` and normalised.

  Raises:
    DataError: the images are smaller than the input size (unless
      ``allow_upsample``): enlarging them would invent detail the source never
      saw in training, so the ranking would measure the upsampling.
  """
  images = np.asarray(images, np.float32)
  if pre.input_size is not None:
    side = min(images.shape[1], images.shape[2])
    if side < pre.input_size and not allow_upsample:
      raise DataError(
          f"{source} takes {pre.input_size}x{pre.input_size} images but the target "
          f"images are {images.shape[1]}x{images.shape[2]}: too small. Use a "
          f"target with images of at least {pre.input_size} pixels a side, or "
          "pass --allow_upsample to enlarge them (the ranking then also measures "
          "how the source copes with blurred inputs).")
    images = resize_keep_channels(images, pre.input_size)
  images = to_channels(images, pre.channels)
  if pre.mean is not None:
    images = images - np.asarray(pre.mean, np.float32)
  if pre.std is not None:
    images = images / np.asarray(pre.std, np.float32)
  return images


@dataclasses.dataclass(frozen=True)
class SourceInfo:
  """Facts about one source, for the ranking table.

  Attributes:
    name: unique name in the ranking.
    kind: ``"zoo"``, ``"flax"`` or ``"files"``.
    preprocess: its input (None for feature files).
    num_classes: source-task classes when it has logits, else None.
    metrics: optional per-source numbers (the zoo's training accuracies).
    extra: anything else worth a column (zoo task metadata).
  """
  name: str
  kind: str
  preprocess: Preprocess | None = None
  num_classes: int | None = None
  metrics: dict[str, float] = dataclasses.field(default_factory=dict)
  extra: dict[str, Any] = dataclasses.field(default_factory=dict)


class SourceGroup:
  """Sources that share one way of computing their outputs.

  Subclasses set ``infos`` (one ``SourceInfo`` per member) and implement
  ``output_shapes`` and ``outputs``.
  """
  infos: list[SourceInfo]

  def __len__(self) -> int:
    return len(self.infos)

  def output_shapes(self, num_rows: int) -> list[tuple[int, int | None]]:
    """Per member: ``(feature dim d, logit dim c or None)``, without computing."""
    raise NotImplementedError

  def outputs(self, members: Sequence[int], images: np.ndarray, rows: np.ndarray,
              *, allow_upsample: bool = False
              ) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """``[(features [r, d], logits [r, c] or None)]`` of ``members`` on ``rows``.

    Args:
      members: member indices of this group.
      images: all target images ``[N, h, w, c]`` in ``[0, 1]``.
      rows: ``[r]`` target rows to score (indices into ``images``).
      allow_upsample: let sources enlarge too-small images.
    """
    raise NotImplementedError


def check_outputs(name: str, features: Any, logits: Any, num_rows: int
                  ) -> tuple[np.ndarray, np.ndarray | None]:
  """Shapes and finiteness of one source's outputs; float32 arrays back."""
  features = np.asarray(features)
  if features.ndim != 2 or features.shape[0] != num_rows:
    raise EstimatorError(
        f"source {name!r}: features have shape {features.shape}; expected "
        f"[{num_rows}, d] (one row per target image). Return the penultimate "
        "activations flattened to [n, d].")
  if not np.issubdtype(features.dtype, np.number):
    raise EstimatorError(f"source {name!r}: features have dtype {features.dtype}; "
                         "give real numbers.")
  features = features.astype(np.float32)
  bad = ~np.isfinite(features)
  if bad.any():
    rows = np.flatnonzero(bad.any(axis=1))
    raise EstimatorError(
        f"source {name!r}: {int(bad.sum())} NaN/inf feature values in "
        f"{len(rows)} row(s) (first rows {rows[:5].tolist()}); a broken "
        "checkpoint or an overflow. Fix or drop this source.")
  if logits is not None:
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[0] != num_rows or logits.shape[1] < 2:
      raise EstimatorError(
          f"source {name!r}: logits have shape {logits.shape}; expected "
          f"[{num_rows}, c] with c >= 2 source classes.")
    logits = logits.astype(np.float32)
    if not np.all(np.isfinite(logits) | (logits == np.finfo(np.float32).min)):
      raise EstimatorError(f"source {name!r}: logits contain NaN/inf.")
  return features, logits


def unique_names(groups: Sequence[SourceGroup]) -> list[str]:
  """All member names, checked to be unique (they key the ranking)."""
  names = [info.name for g in groups for info in g.infos]
  dup = sorted({n for n in names if names.count(n) > 1})
  if dup:
    raise DataError(f"source names {dup[:5]} occur more than once; every source in "
                    "one ranking needs its own name (rename the files or pass "
                    "name= in the factory).")
  return names
