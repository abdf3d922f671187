"""A zoo made of several trained zoos: sources whose quality differs by construction.

One ``ZooConfig`` fixes the pool, the images per class and the training length
for every source. A testbed needs sources that differ in exactly these (some
well trained on many images, some on a few images per class, some stopped after
an epoch), so a *union* lists member zoo workdirs, each trained (and resumed)
on its own with ``zoo.run``, and ``load_union`` stacks them into one ``Zoo``.

Layout: ``<dir>/zoo_union.json`` = ``{"members": [{"name", "path"}, ...]}``.
Source ``j`` of member ``m`` gets ``task_id = m * ID_STRIDE + j``; the member's
name, training epochs and images per class are kept per source.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from transferjax import io
from transferjax.config import build
from transferjax.data.tasks import SourceTask
from transferjax.errors import CheckpointError, ConfigError
from transferjax.train import zoo as zoo_lib

UNION_FILE = "zoo_union.json"
ID_STRIDE = 10_000


def is_union(path: str) -> bool:
  return os.path.exists(os.path.join(path, UNION_FILE))


def write_union(path: str, members: Sequence[tuple[str, str]]) -> None:
  """Writes ``<path>/zoo_union.json`` for ``[(name, member_workdir), ...]``."""
  if not members:
    raise ConfigError("A zoo union needs at least one member zoo.")
  io.write_json(os.path.join(path, UNION_FILE),
                {"members": [{"name": n, "path": os.path.abspath(p)}
                             for n, p in members]})


def member_configs(zoo: Any, members: Mapping[str, Any], seed: int = 0
                   ) -> list[tuple[str, zoo_lib.ZooConfig]]:
  """``[(name, ZooConfig)]`` of a union's members, in ``seed_offset`` order.

  Args:
    zoo: what every member shares (a ``ZooConfig`` section without ``seed``);
      ``num_tasks`` counts all members' sources.
    members: ``{name: {share, seed_offset, max_per_class, epochs}}``: each member
      takes ``round(share * num_tasks)`` sources (the first member the rest,
      >= 1 each), ``min(member, zoo) max_per_class``, its own ``epochs`` or (None)
      the zoo's, and the zoo seed ``100 * seed + seed_offset``.
    seed: the union's seed (another seed draws other tasks in every member).

  Raises:
    ConfigError: fewer sources than members.
  """
  ordered = sorted(members.items(), key=lambda kv: kv[1]["seed_offset"])
  total = int(zoo["num_tasks"])
  if total < len(ordered):
    raise ConfigError(f"--num_tasks={total}: the zoo union has {len(ordered)} members "
                      f"({', '.join(n for n, _ in ordered)}); use at least {len(ordered)}.")
  sizes = [max(1, round(total * m["share"])) for _, m in ordered[1:]]
  sizes = [max(1, total - sum(sizes))] + sizes
  cap = zoo["max_per_class"]
  return [(name, build(zoo_lib.ZooConfig, zoo, "config.zoo", num_tasks=n,
                       epochs=m["epochs"] or zoo["epochs"],
                       max_per_class=(m["max_per_class"] if cap is None
                                      else min(m["max_per_class"], cap)),
                       seed=100 * seed + m["seed_offset"]))
          for (name, m), n in zip(ordered, sizes)]


def train_union(path: str, members: Sequence[tuple[str, zoo_lib.ZooConfig]]) -> None:
  """Trains (or resumes) every member at ``<path>/<name>`` and writes the union."""
  for name, cfg in members:
    zoo_lib.run(cfg, os.path.join(path, name))
  write_union(path, [(name, os.path.join(path, name)) for name, _ in members])


def load_union(path: str) -> zoo_lib.Zoo:
  """The member zoos of ``path`` stacked into one ``Zoo`` (same arch and head)."""
  spec = io.read_json(os.path.join(path, UNION_FILE))
  zoos = []
  for member in spec["members"]:
    if not os.path.isdir(member["path"]):
      raise CheckpointError(f"Zoo union {path}: member {member['name']!r} is missing "
                            f"({member['path']}); train it first.")
    zoos.append(zoo_lib.load_zoo(member["path"]))
  first = zoos[0]
  for m, z in zip(spec["members"], zoos):
    if (z.arch, z.image_size, z.max_classes, z.conv_impl) != (
        first.arch, first.image_size, first.max_classes, first.conv_impl):
      raise ConfigError(
          f"Zoo union {path}: member {m['name']!r} has arch/size/head/conv "
          f"{(z.arch, z.image_size, z.max_classes, z.conv_impl)}, the first member "
          f"{(first.arch, first.image_size, first.max_classes, first.conv_impl)}; "
          "train every member with the same arch, image size, max_classes and conv.")
  params = {name: {k: np.concatenate([np.asarray(z.params[name][k]) for z in zoos])
                   for k in first.params[name]} for name in first.params}
  tasks, member_of, epochs, per_class = [], [], [], []
  for mi, (m, z) in enumerate(zip(spec["members"], zoos)):
    for t in z.tasks:
      tasks.append(SourceTask(mi * ID_STRIDE + t.task_id, t.pool, t.classes,
                              t.train_indices, t.holdout_indices))
      member_of.append(m["name"])
      epochs.append(float(z.config["epochs"]))
      per_class.append(float(z.config.get("max_per_class") or np.nan))
  metrics = {k: np.concatenate([np.asarray(z.metrics[k]) for z in zoos])
             for k in first.metrics}
  metrics["source_epochs"] = np.asarray(epochs)
  config = dict(first.config)
  config.update({"union": [m["name"] for m in spec["members"]],
                 "member_of_source": member_of,
                 "max_per_class_of_source": per_class,
                 "dataset": None})     # members may draw from different pools
  return zoo_lib.Zoo(params, tasks, first.arch, first.image_size, first.max_classes,
                     metrics, config)
