"""Target tasks and the paper's target splits.

The paper takes a small labeled part ``D_a`` of the target data (5 %), splits
it 85 % / 15 % into ``D_t`` (trains the target net, fine-tuning) and ``D_v``
(validation: early stopping and the scoring set), and tests on the rest
``D_e``. All splits here are stratified per class and seeded.
"""
from __future__ import annotations

import re

import numpy as np

from transferjax.data.container import Dataset
from transferjax.data.registry import dataset_options, load_dataset
from transferjax.data.tasks import TargetSplit
from transferjax.errors import DataError


def _round_half_up(x):
  return np.floor(np.asarray(x, np.float64) + 0.5).astype(np.int64)


def _class_id(ds: Dataset, cls: int | str) -> int:
  if isinstance(cls, str):
    if cls in ds.class_names:
      return ds.class_names.index(cls)
    if re.fullmatch(r"\d+", cls) and int(cls) < ds.num_classes:
      return int(cls)
  elif isinstance(cls, (int, np.integer)) and 0 <= int(cls) < ds.num_classes:
    return int(cls)
  shown = ", ".join(ds.class_names[:30]) + (" ..." if ds.num_classes > 30 else "")
  raise DataError(f"Class {cls!r} is not in data set {ds.name!r}; its "
                  f"{ds.num_classes} classes are: {shown}.")


def binary_task(ds: Dataset, negative: int | str, positive: int | str) -> Dataset:
  """The two-class target ``negative`` (label 0) vs ``positive`` (label 1).

  Args:
    ds: a multi-class data set.
    negative: class name (or id) that becomes label 0.
    positive: class name (or id) that becomes label 1.

  Returns:
    Dataset of just those two classes; class names kept, in order
    ``(negative, positive)``; ``metadata["pair"]`` records the choice.
  """
  neg, pos = _class_id(ds, negative), _class_id(ds, positive)
  if neg == pos:
    raise DataError(f"binary_task: negative and positive are the same class "
                    f"{ds.class_names[neg]!r}; pick two different classes.")
  keep = np.flatnonzero((ds.labels == neg) | (ds.labels == pos))
  for cid in (neg, pos):
    if not np.any(ds.labels == cid):
      raise DataError(f"binary_task: class {ds.class_names[cid]!r} has no "
                      f"examples in {ds.name!r}.")
  names = (ds.class_names[neg], ds.class_names[pos])
  meta = dict(ds.metadata)
  meta["pair"] = {"negative": names[0], "positive": names[1],
                  "negative_id": neg, "positive_id": pos, "base": ds.name}
  if "display_name" in meta:
    meta["display_name"] = f"{meta['display_name']}:{names[0]},{names[1]}"
  return Dataset(ds.images[keep], (ds.labels[keep] == pos).astype(np.int32),
                 names, f"{ds.name}:{names[0]},{names[1]}", meta)


def class_subset(ds: Dataset, classes) -> Dataset:
  """The multi-class target of ``classes`` (names or ids), relabelled ``0..C-1``
  in the order given; ``metadata["classes"]`` records the choice."""
  ids = [_class_id(ds, c) for c in classes]
  if len(set(ids)) != len(ids):
    raise DataError(f"class_subset: classes {list(classes)} repeat; give distinct classes.")
  lookup = np.full(ds.num_classes, -1, np.int32)
  lookup[ids] = np.arange(len(ids), dtype=np.int32)
  keep = np.flatnonzero(lookup[ds.labels] >= 0)
  names = tuple(ds.class_names[i] for i in ids)
  meta = dict(ds.metadata)
  meta["classes"] = {"names": list(names), "ids": ids, "base": ds.name}
  return Dataset(ds.images[keep], lookup[ds.labels[keep]], names,
                 f"{ds.name}:{','.join(names)}", meta)


def _parse_classes(text: str) -> tuple[str, ...] | None:
  # "5,6,7" -> ("5", "6", "7") for three or more classes.
  parts = text.split(",")
  if len(parts) >= 3 and all(p.strip() for p in parts) and "/" not in text:
    return tuple(p.strip() for p in parts)
  return None


def _parse_pair(text: str) -> tuple[str, str] | None:
  # "4,9" -> ("4", "9"). A path (has "/" or ".npz") is never a pair.
  parts = text.split(",")
  if len(parts) == 2 and all(parts) and "/" not in text and not text.endswith(".npz"):
    return parts[0].strip(), parts[1].strip()
  return None


def _names_a_dataset(name: str) -> bool:
  """Whether ``name`` is a registry name (``mnist``, ``npz:PATH``, ``a+b``)."""
  try:
    dataset_options(name)
  except DataError:
    return False
  return True


def _looks_like_classes(text: str) -> bool:
  # "4", "4,9,1", "cat": a class list after a data set name, not a path.
  return "/" not in text and not text.endswith(".npz")


def load_target(spec: str, **options) -> Dataset:
  """Loads a target task from a spec.

  Specs: ``"mnist:4,9"`` (4 = negative, 9 = positive), ``"digits:3,5"``,
  ``"mnist:5,6,7,8,9"`` (three or more classes: a multi-class target),
  ``"scenes:astronaut/r0c0,camera/r1c1"``, ``"spots"``, ``"faces"``,
  ``"npz:/path/x.npz"``, ``"npz:/path/x.npz:0,1"``, ``"tfds:mnist:4,9"``.
  Without a pair the data set is returned whole.

  Args:
    spec: the spec string.
    **options: passed to ``load_dataset``.

  Returns:
    The target Dataset.
  """
  if not isinstance(spec, str) or not spec:
    raise DataError(f"Target spec must be a non-empty string like 'mnist:4,9', got {spec!r}.")
  base, pair, many = spec, None, None
  head, sep, tail = spec.rpartition(":")
  if sep and head and _parse_pair(tail):
    base, pair = head, _parse_pair(tail)
  elif sep and head and _parse_classes(tail):
    base, many = head, _parse_classes(tail)
  elif sep and head and _names_a_dataset(head) and _looks_like_classes(tail):
    raise DataError(
        f"Target spec {spec!r}: malformed class list {tail!r} after {head!r}; a "
        f"target names two classes NEGATIVE,POSITIVE (e.g. {head}:4,9), three or "
        f"more for a multi-class target (e.g. {head}:5,6,7), or none for the "
        f"whole data set ({head}).")
  ds = load_dataset(base, **options)
  if many is not None:
    return class_subset(ds, many)
  if pair is None:
    return ds
  return binary_task(ds, pair[0], pair[1])


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
  """Splits ``total`` over classes in proportion to ``counts`` (largest remainder)."""
  exact = counts * (total / counts.sum())
  alloc = np.floor(exact).astype(np.int64)
  short = total - alloc.sum()
  order = np.lexsort((np.arange(len(counts)), -(exact - alloc)))
  alloc[order[:short]] += 1
  return np.minimum(alloc, counts)


# The one default for how many target images are labeled (D_a): the paper's 5%
# of the target data (50 images for mnist:4,9). Every entry point (rank,
# transfer, evaluate, demo) and the notebook use it unless --num_labeled or
# --fraction says otherwise.
DEFAULT_FRACTION = 0.05
# Share of D_a held out as D_v (early stopping): the paper's 15%. Few-shot
# targets with few labeled images per class may want more (docs/notes/demo3.md).
DEFAULT_VAL_FRACTION = 0.15


def _split_counts(counts: np.ndarray, num_labeled: int, val_fraction: float):
  labeled = _allocate(counts, num_labeled)
  val = _round_half_up(val_fraction * labeled)
  return labeled, labeled - val, val


def paper_split(ds: Dataset, *, fraction: float = DEFAULT_FRACTION,
                val_fraction: float = DEFAULT_VAL_FRACTION,
                seed: int = 0, num_labeled: int | None = None,
                min_val_per_class: int = 2, shots_per_class: int | None = None,
                max_test_per_class: int | None = None) -> TargetSplit:
  """The paper's split: ``D_a`` (``D_t`` + ``D_v``) and the test set ``D_e``.

  ``D_a`` has ``round(fraction * n)`` (or ``num_labeled``) examples allocated
  to classes in proportion to their counts (largest remainder); in each class
  ``round(val_fraction * |D_a ∩ class|)`` go to ``D_v``, the rest of ``D_a``
  to ``D_t``; everything else is ``D_e``. Which examples is seeded.

  Args:
    ds: the target data set.
    fraction: share of the data that is labeled (``D_a``).
    val_fraction: share of ``D_a`` used as ``D_v``.
    seed: split seed.
    num_labeled: absolute ``|D_a|`` (overrides ``fraction``).
    min_val_per_class: fewest examples of any class allowed in ``D_v``.
    shots_per_class: few-shot ``D_a``: exactly this many labeled examples of
      every class (overrides ``num_labeled`` and ``fraction``).
    max_test_per_class: cap on ``D_e`` per class (a seeded random subset; the
      test set only needs to be large enough to rank sources).

  Returns:
    ``TargetSplit(train=D_t, val=D_v, test=D_e, seed=seed)``.
  """
  n, counts = ds.num_examples, ds.class_counts()
  if not 0.0 < val_fraction < 1.0:
    raise DataError(f"paper_split: val_fraction must be in (0, 1), got {val_fraction}.")
  if max_test_per_class is not None and max_test_per_class < 1:
    raise DataError(f"paper_split: max_test_per_class must be >= 1, got "
                    f"{max_test_per_class}.")
  if shots_per_class is not None:
    return _few_shot_split(ds, int(shots_per_class), val_fraction, seed,
                           min_val_per_class, max_test_per_class)
  if num_labeled is None:
    if not 0.0 < fraction < 1.0:
      raise DataError(f"paper_split: fraction must be in (0, 1), got {fraction}.")
    num_labeled = int(_round_half_up(fraction * n))
    what = f"fraction={fraction} ({num_labeled} of {n} examples)"
  else:
    if int(num_labeled) != num_labeled or not 0 < num_labeled < n:
      raise DataError(f"paper_split: num_labeled must be an integer in [1, {n - 1}], "
                      f"got {num_labeled}.")
    num_labeled = int(num_labeled)
    what = f"num_labeled={num_labeled}"
  present = np.flatnonzero(counts > 0)

  def problems(m):
    labeled, train, val = _split_counts(counts[present], m, val_fraction)
    test = counts[present] - labeled
    bad = [(present[i], labeled[i], train[i], val[i], test[i])
           for i in range(len(present))
           if val[i] < min_val_per_class or train[i] < 1 or test[i] < 1]
    return bad

  bad = problems(num_labeled)
  if bad:
    cid, a, t, v, e = min(bad, key=lambda b: (b[3], b[2], b[4]))  # Worst class.
    smallest = next((m for m in range(num_labeled + 1, n) if not problems(m)), None)
    # Fewest labeled images of one class that give min_val_per_class in D_v and
    # >= 1 in D_t; the class also needs >= 1 in D_e.
    per_class = next(a for a in range(2, 10**6)
                     if _round_half_up(val_fraction * a) >= min_val_per_class
                     and a - _round_half_up(val_fraction * a) >= 1)
    too_small = [ds.class_names[c] for c in present if counts[c] < per_class + 1]
    if smallest and smallest > num_labeled:
      fix = (f"The smallest size that works is num_labeled={smallest} "
             f"(fraction >= {smallest / n:.4f})")
    elif too_small:
      raise DataError(
          f"paper_split of {ds.name!r} with {what}: the target is too small for "
          f"any labeled size: class(es) {too_small} have fewer than "
          f"{per_class + 1} images, but each class needs {per_class} labeled "
          f"images (>= {min_val_per_class} in D_v, min_val_per_class, and >= 1 in "
          f"D_t at val_fraction={val_fraction}) plus >= 1 test image in D_e. Use "
          "a target with more images per class.")
    else:
      fix = "Lower fraction/num_labeled so every class keeps test examples"
    raise DataError(
        f"paper_split of {ds.name!r} with {what}: class {ds.class_names[cid]!r} "
        f"({counts[cid]} examples) gets {a} labeled -> {t} in D_t, {v} in D_v, "
        f"{e} in D_e; need >= {min_val_per_class} in D_v (min_val_per_class), "
        f">= 1 in D_t and >= 1 in D_e. {fix}, or lower min_val_per_class.")

  labeled, train, val = _split_counts(counts[present], num_labeled, val_fraction)
  return _assemble(ds, present, train, val, seed, num_labeled, val_fraction,
                   max_test_per_class)


def _few_shot_split(ds: Dataset, shots: int, val_fraction: float, seed: int,
                    min_val_per_class: int, max_test_per_class: int | None
                    ) -> TargetSplit:
  """``shots`` labeled examples per class: ``round(val_fraction * shots)`` (at
  least ``min_val_per_class``) early-stop in ``D_v``, the rest train."""
  counts = ds.class_counts()
  present = np.flatnonzero(counts > 0)
  val = max(int(_round_half_up(val_fraction * shots)), int(min_val_per_class))
  if shots - val < 1:
    raise DataError(f"paper_split: shots_per_class={shots} leaves no training "
                    f"example after {val} for D_v; use shots_per_class >= {val + 1}.")
  small = [ds.class_names[c] for c in present if counts[c] < shots + 1]
  if small:
    raise DataError(f"paper_split: class(es) {small[:5]} of {ds.name!r} have fewer "
                    f"than shots_per_class + 1 = {shots + 1} examples (one must stay "
                    "for D_e); lower shots_per_class.")
  k = len(present)
  return _assemble(ds, present, np.full(k, shots - val), np.full(k, val), seed,
                   shots * k, val_fraction, max_test_per_class,
                   extra={"shots_per_class": shots})


def _assemble(ds, present, train, val, seed, num_labeled, val_fraction,
              max_test_per_class, extra=None) -> TargetSplit:
  rng = np.random.default_rng(seed)
  parts = {"train": [], "val": [], "test": []}
  for cid, t, v in zip(present, train, val):
    idx = rng.permutation(np.flatnonzero(ds.labels == cid))
    parts["val"].append(idx[:v])
    parts["train"].append(idx[v:v + t])
    parts["test"].append(idx[v + t:][:max_test_per_class])
  out = {}
  for key, chunks in parts.items():
    # Shuffle so classes are interleaved (minibatches see both classes).
    idx = rng.permutation(np.concatenate(chunks))
    out[key] = ds.subset(idx, name=ds.name)
  for key in out:
    out[key].metadata["split"] = {"part": key, "seed": int(seed),
                                  "num_labeled": int(num_labeled),
                                  "val_fraction": float(val_fraction), **(extra or {})}
  return TargetSplit(out["train"], out["val"], out["test"], seed=int(seed))


def split_class_counts(split: TargetSplit) -> dict[str, dict[str, int]]:
  """``{part: {class_name: count, ..., "total": n}}`` for train/val/test."""
  report = {}
  for part, ds in (("train", split.train), ("val", split.val), ("test", split.test)):
    row = {name: int(c) for name, c in zip(ds.class_names, ds.class_counts())}
    row["total"] = ds.num_examples
    report[part] = row
  return report


def split_sizes_report(split: TargetSplit) -> str:
  """A small text table of per-class sizes of D_t, D_v and D_e."""
  counts = split_class_counts(split)
  names = list(split.train.class_names) + ["total"]
  width = max(8, *(len(n) for n in names))
  lines = [f"{'class':<{width}} {'D_t':>6} {'D_v':>6} {'D_e':>6}"]
  for name in names:
    lines.append(f"{name:<{width}} {counts['train'][name]:>6} "
                 f"{counts['val'][name]:>6} {counts['test'][name]:>6}")
  return "\n".join(lines)


def stratified_folds(labels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
  """Assigns each example to one of ``k`` stratified folds (for cross-fitting).

  Args:
    labels: int ``[n]``.
    k: number of folds (2 <= k <= n).
    seed: shuffle seed.

  Returns:
    int32 ``[n]`` fold id in ``0..k-1`` per example (sklearn StratifiedKFold
    with shuffling: fold sizes differ by at most one per class).
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise DataError(f"stratified_folds: labels must be [n], got shape {labels.shape}.")
  if int(k) != k or not 2 <= k <= len(labels):
    raise DataError(f"stratified_folds: k must be an integer in [2, n={len(labels)}], "
                    f"got {k}.")
  import sklearn.model_selection  # pylint: disable=g-import-not-at-top
  folds = np.full(len(labels), -1, np.int32)
  splitter = sklearn.model_selection.StratifiedKFold(
      n_splits=int(k), shuffle=True, random_state=int(seed))
  try:
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
      folds[test] = fold
  except ValueError as e:
    raise DataError(f"stratified_folds: cannot make {k} stratified folds ({e}); "
                    "lower k.") from e
  return folds
