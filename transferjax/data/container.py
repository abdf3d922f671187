"""The one typed container every loader returns."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from transferjax.errors import DataError


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """An image-classification data set held in memory.

  Attributes:
    images: float32 ``[n, h, w, 1]`` gray images in ``[0, 1]`` (every built-in
      loader), or ``[n, h, w, 3]`` RGB where a loader was asked to keep colour
      (``folder:``/``npz:`` with ``color=True``, for sources that take colour).
    labels: int32 ``[n]`` class ids in ``[0, len(class_names))``.
    class_names: one name per class id.
    name: registry name, e.g. ``"mnist"`` or ``"spots"``.
    metadata: JSON-serialisable facts (source, synthetic flag, options).
  """
  images: np.ndarray
  labels: np.ndarray
  class_names: tuple[str, ...]
  name: str
  metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    images = np.asarray(self.images)
    labels = np.asarray(self.labels)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise DataError(
          f"Dataset {self.name!r}: images must be [n, h, w, 1] gray or [n, h, w, 3] "
          f"RGB, got shape {images.shape}. Convert with "
          "transferjax.data.preprocess.to_gray.")
    if labels.shape != (images.shape[0],):
      raise DataError(
          f"Dataset {self.name!r}: {images.shape[0]} images but labels of shape "
          f"{labels.shape}; give one integer label per image.")
    if images.dtype != np.float32:
      images = images.astype(np.float32)
    if not np.issubdtype(labels.dtype, np.integer):
      if not np.all(np.equal(np.mod(labels, 1), 0)):
        raise DataError(f"Dataset {self.name!r}: labels must be integers.")
    labels = labels.astype(np.int32)
    if images.size and not np.all(np.isfinite(images)):
      raise DataError(f"Dataset {self.name!r}: images contain NaN or inf.")
    if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
      raise DataError(
          f"Dataset {self.name!r}: labels span [{labels.min()}, {labels.max()}] "
          f"but there are {len(self.class_names)} class names.")
    object.__setattr__(self, "images", images)
    object.__setattr__(self, "labels", labels)
    object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

  @property
  def num_examples(self) -> int:
    return int(self.images.shape[0])

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def image_size(self) -> int:
    """Side of the (square) images; the size checked between source and target."""
    return int(self.images.shape[1])

  @property
  def channels(self) -> int:
    """1 (gray) or 3 (RGB)."""
    return int(self.images.shape[-1])

  def class_counts(self) -> np.ndarray:
    return np.bincount(self.labels, minlength=self.num_classes)

  def subset(self, indices: np.ndarray, *, name: str | None = None) -> "Dataset":
    """Rows ``indices`` with the same classes."""
    indices = np.asarray(indices)
    return Dataset(self.images[indices], self.labels[indices], self.class_names,
                   name or self.name, dict(self.metadata))
