"""Small builders shared by several test files (imported as ``testlib``)."""
import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from transferjax.data.container import Dataset
from transferjax.data.tasks import SourceTask
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


def class_subset_tasks(pool: Dataset, rng: np.random.Generator, sizes,
                       first_id: int) -> list[SourceTask]:
  """One task per ``(k, m)`` in ``sizes``: k random classes of ``pool``, m training
  and 2 holdout rows per class. ``sizes`` may draw from ``rng`` lazily (a
  generator): the draws interleave with the class choices as written."""
  tasks = []
  for i, (k, m) in enumerate(sizes):
    classes = np.sort(rng.choice(6, k, replace=False))
    train, hold = [], []
    for c in classes:
      rows = rng.permutation(np.flatnonzero(pool.labels == c))
      train.append(rows[:m])
      hold.append(rows[m:m + 2])
    tasks.append(SourceTask(first_id + i, "syn", classes,
                            np.sort(np.concatenate(train)),
                            np.sort(np.concatenate(hold))))
  return tasks


def numpy_conv3x3_grads(x, kernel, g):
  """Float64 input and kernel gradients of a 3x3 SAME conv (direct sums)."""
  b, h, w, _ = x.shape
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  dxp = np.zeros_like(xp)
  dk = np.zeros_like(kernel)
  for i in range(3):
    for j in range(3):
      dk[i, j] = np.einsum("bhwc,bhwo->co", xp[:, i:i + h, j:j + w], g)
      dxp[:, i:i + h, j:j + w] += np.einsum("bhwo,co->bhwc", g, kernel[i, j])
  return dxp[:, 1:-1, 1:-1], dk


def numpy_conv3x3(x, kernel):
  """Float64 3x3 SAME convolution, NHWC x HWIO (direct sums)."""
  b, h, w, _ = x.shape
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return sum(np.einsum("bhwc,co->bhwo", xp[:, i:i + h, j:j + w], kernel[i, j])
             for i in range(3) for j in range(3))


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def notebook_text(cell) -> str:
  """All text a code cell printed or displayed (stdout, stderr, text/plain)."""
  parts = []
  for out in cell.get("outputs", []):
    if out.get("output_type") == "stream":
      parts.append(out.get("text", ""))
    elif "data" in out:
      parts.append(out["data"].get("text/plain", ""))
  return "".join(parts)


def execute_notebook_smoke(nb, workdir: str) -> None:
  """Runs ``nb`` in place in smoke mode with ``workdir`` as cwd and TMPDIR.

  The kernel is a separate process, so conftest's settings do not reach it; it
  runs on one CPU device (the tests' 4 fake devices are not needed there).
  Raises nbclient's CellExecutionError (with the traceback) if a cell fails.
  """
  import nbclient  # pylint: disable=g-import-not-at-top  (a test extra)
  env = dict(os.environ, TRANSFERJAX_SMOKE="1", JAX_PLATFORMS="cpu",
             TMPDIR=str(workdir), TRANSFERJAX_PROGRESS="0",
             PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  env["XLA_FLAGS"] = re.sub(r"--xla_force_host_platform_device_count=\d+", "",
                            env.get("XLA_FLAGS", "")).strip()
  client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                   resources={"metadata": {"path": str(workdir)}})
  client.execute(env=env)
