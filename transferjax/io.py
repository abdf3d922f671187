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

from transferjax.errors import ConfigError


def _umask() -> int:
  """The process umask. Linux reports it in /proc; elsewhere it can only be read
  by setting it and restoring it at once (briefly visible to other threads)."""
  try:
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except OSError:
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def _atomic_write_bytes(path: str, data: bytes) -> None:
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
  try:
    # mkstemp creates the file 0600; the renamed output must get the mode any
    # ordinary open() would give it (0666 minus the user's umask).
    os.fchmod(fd, 0o666 & ~_umask())
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def check_output_dir(path: str, what: str = "--workdir") -> str:
  """ConfigError unless ``path`` is (or can be created as) a writable folder.

  Entry points call it before any work, so a folder that is an existing file
  (or lies under one) is reported at once, not after minutes of training.

  Args:
    path: the output folder.
    what: how the user named it (a flag), for the message.

  Returns:
    ``path``.
  """
  if not isinstance(path, str) or not path:
    raise ConfigError(f"{what} must be a folder path, got {path!r}.")
  probe = os.path.abspath(path)
  while not os.path.exists(probe):
    parent = os.path.dirname(probe)
    if parent == probe:
      break
    probe = parent
  if os.path.exists(probe) and not os.path.isdir(probe):
    where = ("is an existing file" if probe == os.path.abspath(path)
             else f"lies under {probe}, which is a file")
    raise ConfigError(f"{what}={path} {where}, not a folder. Pass a folder path "
                      f"(e.g. {what}={path}.d) or move that file away.")
  if os.path.isdir(probe) and not os.access(probe, os.W_OK | os.X_OK):
    raise ConfigError(f"{what}={path}: no write permission in {probe}. Pass a "
                      "folder you can write to.")
  return path


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
