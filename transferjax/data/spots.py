"""``spots``: a SYNTHETIC stand-in for the paper's private MRI spot data.

The paper's target task (detecting small dark spots, e.g. iron-labelled cells,
in 9x9 MRI patches, about 5 % positives) uses data that is not public. This
seeded generator makes patches with the same shape and class balance:

* background: a base level, a linear intensity gradient of random direction,
  spatially smoothed Gaussian noise (tissue-like texture) and white pixel
  noise;
* positives (label 1): additionally a dark isotropic Gaussian blob of random
  width (around ``spot_size`` pixels), depth (around ``contrast``) and a
  centre jittered by up to one pixel.

It is NOT MRI data. Every name, class name and metadata entry says
"synthetic" so no result can be mistaken for one on the real data set.
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage

from transferjax.data.container import Dataset
from transferjax.data.preprocess import resize_images
from transferjax.errors import DataError

NATIVE_SIZE = 9
DISPLAY_NAME = "spots (synthetic)"
CLASS_NAMES = ("background (synthetic)", "spot (synthetic)")

# Background constants (not options: the difficulty knobs are below).
_BASE_RANGE = (0.35, 0.65)
_TEXTURE_AMPLITUDE = 0.06
_TEXTURE_SIGMA = 1.5
_MAX_GRADIENT = 0.03  # Intensity change per pixel.
_JITTER = 1.0         # Max spot-centre offset from the patch centre, pixels.


def make_spot_patches(num_examples: int, *, contrast: float, spot_size: float,
                      noise: float, positive_fraction: float,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Generates the patches (vectorised over patches).

  Args:
    num_examples: number of patches ``n``.
    contrast: mean depth of a spot (intensity units; blobs draw it from
      ``contrast * U[0.7, 1.3]``).
    spot_size: mean Gaussian sigma of a spot in pixels (``* U[0.7, 1.3]``).
    noise: std of the white pixel noise.
    positive_fraction: share of positives; exactly
      ``round(positive_fraction * n)`` patches are positives.
    seed: generator seed.

  Returns:
    ``(images float32 [n, 9, 9] in [0, 1], labels int32 [n])``.
  """
  rng = np.random.default_rng(seed)
  n, s = num_examples, NATIVE_SIZE
  num_pos = int(np.floor(positive_fraction * n + 0.5))
  labels = np.zeros(n, np.int32)
  labels[rng.permutation(n)[:num_pos]] = 1

  yy, xx = np.meshgrid(np.arange(s) - (s - 1) / 2, np.arange(s) - (s - 1) / 2,
                       indexing="ij")                       # [s, s]
  base = rng.uniform(*_BASE_RANGE, size=(n, 1, 1))
  angle = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
  slope = rng.uniform(0, _MAX_GRADIENT, size=(n, 1, 1))
  gradient = slope * (np.cos(angle) * xx + np.sin(angle) * yy)
  # Smooth a larger field and cut the middle so the texture has no edge effects.
  pad = 4
  field = rng.standard_normal((n, s + 2 * pad, s + 2 * pad))
  field = scipy.ndimage.gaussian_filter(field, sigma=(0, _TEXTURE_SIGMA, _TEXTURE_SIGMA))
  field = field[:, pad:pad + s, pad:pad + s]
  field /= field.std() + 1e-12
  texture = _TEXTURE_AMPLITUDE * field
  pixel_noise = noise * rng.standard_normal((n, s, s))

  depth = contrast * rng.uniform(0.7, 1.3, size=(n, 1, 1))
  sigma = spot_size * rng.uniform(0.7, 1.3, size=(n, 1, 1))
  cy, cx = (rng.uniform(-_JITTER, _JITTER, size=(2, n, 1, 1)))
  blob = depth * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
  images = base + gradient + texture + pixel_noise - labels[:, None, None] * blob
  return np.clip(images, 0.0, 1.0).astype(np.float32), labels


def load_spots(*, image_size: int = NATIVE_SIZE, seed: int = 0,
               num_examples: int = 6000, positive_fraction: float = 0.05,
               contrast: float = 0.15, spot_size: float = 1.0,
               noise: float = 0.08) -> Dataset:
  """The synthetic spot-detection data set (see the module docstring).

  Args:
    image_size: output side; patches are generated at 9x9 and resized only
      when another size is asked for.
    seed: generator seed.
    num_examples: number of patches.
    positive_fraction: share of spot patches (the paper's data: about 5 %).
    contrast: spot depth; lower is harder. The default 0.15 gives a
      from-scratch spot9 net a test AUC of ~0.77 at 10% labeled (BUILD_NOTES.md).
    spot_size: spot sigma in pixels.
    noise: white-noise std; higher is harder.

  Returns:
    Dataset named ``"spots"``, classes ``("background (synthetic)",
    "spot (synthetic)")``, ``metadata["synthetic"] = True``.
  """
  if int(num_examples) != num_examples or num_examples < 2:
    raise DataError(f"spots: num_examples must be an integer >= 2, got {num_examples!r}.")
  if not 0.0 < positive_fraction < 1.0:
    raise DataError(f"spots: positive_fraction must be in (0, 1), got {positive_fraction!r}.")
  num_pos = int(np.floor(positive_fraction * num_examples + 0.5))
  if num_pos < 1 or num_pos >= num_examples:
    raise DataError(
        f"spots: positive_fraction={positive_fraction} of num_examples={num_examples} "
        f"gives {num_pos} positives; raise num_examples so both classes occur.")
  for key, value in (("contrast", contrast), ("spot_size", spot_size), ("noise", noise)):
    if not np.isfinite(value) or value < 0 or (key == "spot_size" and value == 0):
      raise DataError(f"spots: {key} must be a finite number > 0 (>= 0 for "
                      f"contrast/noise), got {value!r}.")
  images, labels = make_spot_patches(
      int(num_examples), contrast=float(contrast), spot_size=float(spot_size),
      noise=float(noise), positive_fraction=float(positive_fraction), seed=int(seed))
  options = {"image_size": int(image_size), "seed": int(seed),
             "num_examples": int(num_examples),
             "positive_fraction": float(positive_fraction),
             "contrast": float(contrast), "spot_size": float(spot_size),
             "noise": float(noise)}
  return Dataset(resize_images(images, image_size), labels, CLASS_NAMES, "spots",
                 {"source": "SYNTHETIC generator (transferjax.data.spots); a "
                            "stand-in for the paper's private MRI spot data",
                  "synthetic": True, "display_name": DISPLAY_NAME,
                  "native_size": NATIVE_SIZE, "options": options})
