"""Small builders shared by several test files (imported as ``testlib``)."""
import jax
import jax.numpy as jnp
import numpy as np

from transferjax.data.container import Dataset
from transferjax.models import make_cnn


def synthetic_pool() -> Dataset:
  """72 20x20 images of 6 classes (class c brightens rows 3c..3c+2)."""
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(6), 12)
  images = rng.random((72, 20, 20, 1)).astype(np.float32) * 0.3
  for c in range(6):
    images[labels == c, 3 * c:3 * c + 3, :, 0] += 0.7
  return Dataset(np.clip(images, 0, 1), labels, [f"c{i}" for i in range(6)], "syn")


def random_params(m: int, max_classes: int, seed: int):
  """``[m]`` stacked lenet20 parameters: Lecun-normal draws in NumPy (no compile)."""
  shapes = jax.eval_shape(make_cnn("lenet20", max_classes).init, jax.random.key(0),
                          jnp.zeros((1, 20, 20, 1)))["params"]
  rng = np.random.default_rng(seed)

  def draw(s):
    fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 100
    return (rng.standard_normal((m,) + s.shape) / np.sqrt(fan_in)).astype(np.float32)

  return jax.tree.map(draw, shapes)
