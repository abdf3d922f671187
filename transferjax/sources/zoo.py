"""The transferjax zoo as a source group (today's scoring path, same numbers).

Members are the zoo's CNNs, named ``<zoo folder>_<task id>``; their outputs come
from one ``zoo_outputs`` call per block of members (vmapped, sharded over
devices), exactly as ``scoring.rank.score_zoo`` computes them.
"""
from __future__ import annotations

import os

import jax
import numpy as np

from transferjax.models import FEATURE_DIM
from transferjax.sources.base import Preprocess, SourceGroup, SourceInfo, prepare_images
from transferjax.train import zoo as zoo_lib


class ZooGroup(SourceGroup):
  """All CNNs of a trained zoo (``experiments.train_sources``)."""

  def __init__(self, zoo: zoo_lib.Zoo, name: str = "zoo"):
    self.zoo = zoo
    self.pre = Preprocess(input_size=int(zoo.image_size), channels=1)
    self.infos = [
        SourceInfo(name=f"{name}_{task.task_id}", kind="zoo", preprocess=self.pre,
                   num_classes=int(task.num_classes),
                   metrics={k: float(v[i]) for k, v in zoo.metrics.items()},
                   extra={"source_id": int(task.task_id), "pool": task.pool,
                          "classes": " ".join(str(c) for c in task.classes)})
        for i, task in enumerate(zoo.tasks)]

  @classmethod
  def open(cls, path: str) -> "ZooGroup":
    from transferjax.scoring.job import open_zoo  # pylint: disable=g-import-not-at-top
    return cls(open_zoo(path), os.path.basename(os.path.normpath(path)) or "zoo")

  def output_shapes(self, num_rows):
    return [(FEATURE_DIM, int(self.zoo.max_classes))] * len(self)

  def outputs(self, members, images, rows, *, allow_upsample=False):
    members = np.asarray(members)
    x = prepare_images(np.asarray(images)[rows], self.pre, source="the zoo",
                       allow_upsample=allow_upsample)
    if len(members) == len(self) and np.array_equal(members, np.arange(len(self))):
      params = self.zoo.params
    else:
      params = jax.tree.map(lambda a: np.asarray(a)[members], self.zoo.params)
    logits, feats = zoo_lib.zoo_outputs(
        params, self.zoo.arch, x, conv_impl=self.zoo.conv_impl,
        num_classes=[self.zoo.tasks[i].num_classes for i in members])
    return [(feats[j], logits[j]) for j in range(len(members))]


def zoo_flax_models(zoo: zoo_lib.Zoo, name: str = "zoo") -> list:
  """The zoo's CNNs as ``FlaxModel``s (what an exported factory returns).

  Each model is the zoo's own Flax module with one member's parameters; its
  ``__call__`` returns ``(logits, features)``, and the head columns beyond the
  task's classes are masked, as in the zoo path.
  """
  from transferjax.models import make_cnn  # pylint: disable=g-import-not-at-top
  from transferjax.sources.flax_model import FlaxModel  # pylint: disable=g-import-not-at-top
  module = make_cnn(zoo.arch, int(zoo.max_classes), zoo.conv_impl)
  return [FlaxModel(module=module, variables={"params": zoo.model_params(i)},
                    name=f"{name}_{task.task_id}",
                    preprocess=Preprocess(int(zoo.image_size), 1),
                    output="logits_features", num_classes=int(task.num_classes))
          for i, task in enumerate(zoo.tasks)]
