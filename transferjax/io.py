"""Atomic, pickle-free file output and input.

Everything we write goes to a temporary file in the same directory and is then
renamed over the target, so a killed job never leaves a half-written file.
Everything we read back is JSON, CSV or ``np.load(..., allow_pickle=False)``.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from typing import Any, Iterable, Mapping, Sequence

import numpy as np


def _atomic_write_bytes(path: str, data: bytes) -> None:
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def _to_jsonable(x: Any) -> Any:
  """Plain JSON types; numpy arrays/scalars become lists/numbers, and NaN/inf
  (which JSON cannot hold) become null rather than a made-up number."""
  if isinstance(x, Mapping):
    return {str(k): _to_jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_to_jsonable(v) for v in x]
  if isinstance(x, (np.ndarray, np.generic)) or (
      hasattr(x, "__array__") and not isinstance(x, (str, bytes))):
    arr = np.asarray(x)
    return _to_jsonable(arr.item() if arr.ndim == 0 else arr.tolist())
  if isinstance(x, float) and not np.isfinite(x):
    return None
  return x


def write_text(path: str, text: str) -> None:
  _atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str, obj: Any) -> None:
  """Atomically write ``obj`` (numpy arrays allowed) as indented JSON."""
  write_text(path, json.dumps(_to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def read_json(path: str) -> Any:
  with open(path, "r", encoding="utf-8") as f:
    return json.load(f)


def write_csv(path: str, rows: Sequence[Mapping[str, Any]],
              fieldnames: Iterable[str] | None = None) -> None:
  """Atomically write a list of dicts as CSV (columns from the first row)."""
  fieldnames = list(fieldnames) if fieldnames is not None else (
      list(rows[0].keys()) if rows else [])
  buf = io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=fieldnames, extrasaction="ignore")
  writer.writeheader()
  for row in rows:
    writer.writerow({k: _to_jsonable(v) for k, v in row.items()})
  write_text(path, buf.getvalue())


def save_npz(path: str, **arrays: np.ndarray) -> None:
  """Atomically write arrays to ``.npz`` (no object arrays: nothing to unpickle)."""
  buf = io.BytesIO()
  np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
  _atomic_write_bytes(path, buf.getvalue())


def load_npz(path: str) -> dict[str, np.ndarray]:
  """Load a ``.npz`` without ever unpickling (object arrays are refused)."""
  with np.load(path, allow_pickle=False) as z:
    return {k: z[k] for k in z.files}


def save_figure(fig, path: str, dpi: int = 120) -> None:
  """Atomically save a matplotlib figure as PNG and close it."""
  import matplotlib.pyplot as plt
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
  plt.close(fig)
  _atomic_write_bytes(path, buf.getvalue())
