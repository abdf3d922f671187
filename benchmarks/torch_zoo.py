"""The PyTorch baseline of the zoo benchmark: a Python loop over models.

Issue [5/7] measures the JAX zoo trainer against "PyTorch, a loop over models";
this module is that loop, written the way a PyTorch user would write it, on the
reference configuration of ``benchmarks/train_zoo.py``: 20x20x1 input,
conv3x3-32 (SAME), ReLU, max-pool 2, conv3x3-64, ReLU, max-pool 2, dense 200,
ReLU, head of ``num_classes``; Adam 1e-3; batch 64 drawn from each model's own
rows of one shared random image pool (the JAX benchmark's ``_problem``), its
own labels. One model trains all its steps, then the next (the loop a user runs
when each source model is its own ``nn.Module``).

PyTorch is NOT a dependency of transferjax: ``benchmarks/train_zoo.py`` imports
this module only for the ``torch_seq`` variant and reports it as skipped when
``import torch`` fails. On CUDA the loop runs on the GPU and synchronizes before
reading the clock.
"""
from __future__ import annotations

import os
import time

import numpy as np


def available() -> str | None:
  """``None`` if PyTorch imports, else the reason it does not."""
  try:
    import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:  # pragma: no cover - depends on the machine
    return f"torch not importable ({e}); pip install torch to run this variant"
  return None


class TorchLoop:
  """``work(steps)`` trains ``q`` PyTorch models ``steps`` more steps each."""

  def __init__(self, q: int, total_steps: int, samples: int, num_classes: int,
               batch_size: int, seed: int = 0):
    import torch  # pylint: disable=g-import-not-at-top
    from torch import nn  # pylint: disable=g-import-not-at-top
    self.torch = torch
    torch.set_num_threads(os.cpu_count() or 1)
    self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    # The same problem as train_zoo._problem: [2 * samples] pool, per-model rows.
    base = rng.random((2 * samples, 1, 20, 20), dtype=np.float32)
    self.base = torch.from_numpy(base).to(self.device)
    self.idx = [torch.from_numpy(rng.permutation(2 * samples)[:samples]).to(self.device)
                for _ in range(q)]
    self.labels = [torch.from_numpy(rng.integers(0, num_classes, samples)).to(
        self.device) for _ in range(q)]

    def make():
      return nn.Sequential(
          nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
          nn.Flatten(), nn.Linear(64 * 5 * 5, 200), nn.ReLU(),
          nn.Linear(200, num_classes)).to(self.device)

    self.models = [make() for _ in range(q)]
    self.opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in self.models]
    self.loss_fn = nn.CrossEntropyLoss()
    self.q, self.total, self.t, self.b = q, total_steps, 0, batch_size
    self.samples, self.last_loss = samples, float("nan")
    self.arange = torch.arange(batch_size, device=self.device)
    t = time.time()
    self._step(0, 0)  # Warm-up (cuDNN autotuning, allocator); not counted.
    self._sync()
    self.compile_s = time.time() - t

  def _sync(self):
    if self.device.type == "cuda":
      self.torch.cuda.synchronize()

  def _step(self, i: int, t: int):
    pos = (t * self.b + self.arange) % self.samples
    x, y = self.base[self.idx[i][pos]], self.labels[i][pos]
    opt = self.opts[i]
    opt.zero_grad(set_to_none=True)
    loss = self.loss_fn(self.models[i](x), y)
    loss.backward()
    opt.step()
    return loss

  def work(self, steps: int) -> int:
    steps = max(0, min(steps, self.total - self.t))
    loss = None
    for i in range(self.q):  # The baseline being measured: a loop over models.
      for s in range(steps):
        loss = self._step(i, self.t + s)
    self.t += steps
    if loss is not None:
      self.last_loss = float(loss.detach())  # Also synchronizes on CUDA.
    self._sync()
    return self.q * steps

  def final_loss(self) -> float:
    return self.last_loss
