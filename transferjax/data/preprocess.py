"""Image preprocessing shared by every loader: gray, [0, 1] range, square resize.

All loaders end in the same place, ``float32 [n, s, s, 1]`` in ``[0, 1]``, so a
source pool and a target built with the same ``image_size`` always fit the same
CNN (the paper needs source and target input sizes to be equal).
"""
from __future__ import annotations

import numpy as np
import skimage.color
import skimage.transform

from transferjax.errors import DataError


def to_gray(images: np.ndarray) -> np.ndarray:
  """Converts images to single-channel luminance.

  Args:
    images: ``[n, h, w]``, ``[n, h, w, 1]``, ``[n, h, w, 3]`` (RGB) or
      ``[n, h, w, 4]`` (RGBA; alpha dropped), any real dtype, already scaled
      to ``[0, 1]``.

  Returns:
    float32 ``[n, h, w, 1]``. RGB is mapped with the ITU-R BT.709 luminance
    weights of ``skimage.color.rgb2gray`` (0.2125 R + 0.7154 G + 0.0721 B).
  """
  images = np.asarray(images)
  if images.ndim == 3:
    return images[..., None].astype(np.float32)
  if images.ndim != 4:
    raise DataError(
        f"to_gray expects [n, h, w] or [n, h, w, c] images, got shape "
        f"{images.shape}. Stack single images with images[None].")
  channels = images.shape[-1]
  if channels == 1:
    return images.astype(np.float32)
  if channels == 4:
    images = images[..., :3]
  elif channels != 3:
    raise DataError(
        f"to_gray: images have {channels} channels; only 1 (gray), 3 (RGB) "
        "and 4 (RGBA) are understood. Convert the images to RGB or gray first.")
  gray = skimage.color.rgb2gray(images.astype(np.float64), channel_axis=-1)
  return gray[..., None].astype(np.float32)


def center_crop_square(images: np.ndarray) -> np.ndarray:
  """Crops the central square of ``[n, h, w, ...]`` images (no-op if h == w).

  Cropping rather than squashing keeps the aspect ratio of objects.
  """
  images = np.asarray(images)
  h, w = images.shape[1], images.shape[2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  return images[:, top:top + side, left:left + side]


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
  """Resizes gray images to ``size x size`` (bilinear, anti-aliased).

  Non-square images are first center-cropped to a square. The whole stack is
  resized in one ``skimage.transform.resize`` call with the batch axis kept at
  scale 1, which gives exactly the per-image result (no blending across images).

  Args:
    images: ``[n, h, w]`` or ``[n, h, w, 1]`` in ``[0, 1]``.
    size: output side in pixels (>= 2).

  Returns:
    float32 ``[n, size, size, 1]`` clipped to ``[0, 1]``.
  """
  if int(size) != size or size < 2:
    raise DataError(f"image_size must be an integer >= 2, got {size!r}.")
  size = int(size)
  images = to_gray(images)[..., 0]
  images = center_crop_square(images)
  n, side = images.shape[0], images.shape[1]
  if side == size or n == 0:
    return np.clip(images, 0.0, 1.0).astype(np.float32)[..., None]
  out = skimage.transform.resize(
      images.astype(np.float64), (n, size, size), order=1, mode="reflect",
      anti_aliasing=side > size, preserve_range=True)
  return np.clip(out, 0.0, 1.0).astype(np.float32)[..., None]


def scale_to_unit(images: np.ndarray, *, name: str) -> tuple[np.ndarray, str | None]:
  """Maps user images of any numeric dtype to float ``[0, 1]``.

  uint8 is divided by 255. Any other dtype passes unchanged when its values
  lie in ``[0, 1]`` and is otherwise min-max scaled over the whole array (the
  returned note says so, for the metadata), e.g. 12-bit MRI stored as uint16.

  Args:
    images: numeric array, any shape.
    name: data set name, for messages.

  Returns:
    ``(float32 images in [0, 1], note or None)``.
  """
  images = np.asarray(images)
  if images.dtype == np.bool_:
    return images.astype(np.float32), None
  if not np.issubdtype(images.dtype, np.number) or np.iscomplexobj(images):
    raise DataError(
        f"{name}: images have dtype {images.dtype}; save a real numeric array "
        "(uint8 0..255 or float in [0, 1]).")
  if images.dtype == np.uint8:
    return images.astype(np.float32) / 255.0, None
  x = images.astype(np.float64)
  if x.size and not np.all(np.isfinite(x)):
    raise DataError(f"{name}: images contain NaN or inf; clean them before saving.")
  if x.size == 0 or (x.min() >= 0.0 and x.max() <= 1.0):
    return x.astype(np.float32), None
  lo, hi = float(x.min()), float(x.max())
  if hi == lo:
    return np.zeros_like(x, dtype=np.float32), (
        f"all pixel values equal {lo}; images set to 0")
  note = (f"pixel values span [{lo:g}, {hi:g}], outside [0, 1]; min-max scaled "
          "to [0, 1] over the whole array")
  return ((x - lo) / (hi - lo)).astype(np.float32), note


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
  """``[n, h, w, c]`` in ``[0, 1]`` -> ``[n, h, w, channels]`` (1 or 3).

  RGB -> gray uses ``to_gray``'s luminance; gray -> RGB repeats the plane (what
  a colour network sees when it is shown a gray photograph).
  """
  images = np.asarray(images, np.float32)
  if images.ndim == 3:
    images = images[..., None]
  if channels == 1:
    return to_gray(images)
  if channels != 3:
    raise DataError(f"channels must be 1 (gray) or 3 (RGB), got {channels!r}.")
  if images.shape[-1] == 4:
    images = images[..., :3]
  if images.shape[-1] == 3:
    return images
  if images.shape[-1] == 1:
    return np.repeat(images, 3, axis=-1)
  raise DataError(f"images have {images.shape[-1]} channels; only 1, 3 or 4 "
                  "(RGBA, alpha dropped) are understood.")


def resize_keep_channels(images: np.ndarray, size: int) -> np.ndarray:
  """``resize_images`` for ``[n, h, w, c]`` images of any channel count.

  The same centre crop and bilinear anti-aliased resize, applied per channel
  (the channel axis, like the batch axis, is kept at scale 1). For one channel
  the result equals ``resize_images``.

  Args:
    images: ``[n, h, w, c]`` in ``[0, 1]``.
    size: output side (>= 2).

  Returns:
    float32 ``[n, size, size, c]`` clipped to ``[0, 1]``.
  """
  images = np.asarray(images)
  if images.ndim != 4:
    raise DataError(f"resize_keep_channels expects [n, h, w, c], got {images.shape}.")
  if images.shape[-1] == 1:
    return resize_images(images, size)
  if int(size) != size or size < 2:
    raise DataError(f"image_size must be an integer >= 2, got {size!r}.")
  size = int(size)
  images = center_crop_square(images)
  n, side, c = images.shape[0], images.shape[1], images.shape[-1]
  if side == size or n == 0:
    return np.clip(images, 0.0, 1.0).astype(np.float32)
  out = skimage.transform.resize(
      images.astype(np.float64), (n, size, size, c), order=1, mode="reflect",
      anti_aliasing=side > size, preserve_range=True)
  return np.clip(out, 0.0, 1.0).astype(np.float32)
