"""Flax models as sources: ``flax:package.module:factory[@CHECKPOINT]``.

The factory is any importable function of no arguments that returns one
``FlaxModel`` or a list of them. Each names its module, its variables (or
``None`` with ``@CHECKPOINT``: the variables are restored from that orbax
folder), its input (``Preprocess``) and where its features are:

* ``feature_layer="fc"`` (a submodule path, ``"/"``-separated): the output of that
  submodule, read with ``capture_intermediates`` (a conv map is flattened to
  ``[n, h*w*c]``; pool it in the module to get fewer dimensions);
* ``features_method="features"``: a module method returning ``[n, d]``;
* otherwise ``__call__``'s output, by ``output``: ``"features"`` (``[n, d]``),
  ``"logits"`` (source logits; then a feature layer or method is needed) or
  ``"logits_features"`` (a ``(logits, features)`` pair, like transferjax's CNNs).

Example factory (``my_models.py`` on ``PYTHONPATH``)::

  def resnet():
    module = MyResNet(num_classes=1000)
    variables = load_my_variables()
    return FlaxModel(module, variables, name="resnet",
                     preprocess=Preprocess(64, 3, mean=(.485, .456, .406),
                                           std=(.229, .224, .225)),
                     feature_layer="pool", output="logits")

then ``python -m experiments.rank --sources=flax:my_models:resnet --target=...``.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import os
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from transferjax.errors import CheckpointError, ConfigError
from transferjax.models import masked_logits
from transferjax.sources.base import Preprocess, SourceGroup, SourceInfo, prepare_images

OUTPUTS = ("features", "logits", "logits_features")


@dataclasses.dataclass(frozen=True, eq=False)
class FlaxModel:
  """One Flax source model.

  Attributes:
    module: the ``flax.linen`` module.
    variables: its variables ``{"params": ...}`` (None: from ``@CHECKPOINT``).
    name: unique name in the ranking.
    preprocess: input side, channels and normalisation.
    feature_layer: submodule path whose output are the features.
    features_method: name of a module method returning the features.
    output: what ``__call__`` returns (one of ``OUTPUTS``).
    num_classes: source classes; logit columns beyond it are masked.
    batch_size: images per jitted call (the last batch is padded).
  """
  module: nn.Module
  variables: Any
  name: str
  preprocess: Preprocess
  feature_layer: str | None = None
  features_method: str | None = None
  output: str = "features"
  num_classes: int | None = None
  batch_size: int = 128

  def __post_init__(self):
    if self.output not in OUTPUTS:
      raise ConfigError(f"FlaxModel {self.name!r}: output must be one of {OUTPUTS}, "
                        f"got {self.output!r}.")
    if self.preprocess.input_size is None:
      raise ConfigError(f"FlaxModel {self.name!r}: give preprocess.input_size.")
    if self.output == "logits" and not (self.feature_layer or self.features_method):
      raise ConfigError(
          f"FlaxModel {self.name!r}: __call__ returns logits only; name the "
          "features with feature_layer='...' or features_method='...'.")

  @property
  def has_logits(self) -> bool:
    return self.output in ("logits", "logits_features")

  def _apply(self, variables, x):
    """``(features [b, d], logits [b, c] or None)`` of one batch."""
    logits = None
    if self.feature_layer:
      out, state = self.module.apply(variables, x, capture_intermediates=True,
                                     mutable=["intermediates"])
      feats = _find_layer(state["intermediates"], self.feature_layer, self.name)
      feats = feats.reshape(feats.shape[0], -1)  # a conv map -> [b, h*w*c]
    elif self.features_method:
      feats = self.module.apply(variables, x, method=self.features_method)
      out = self.module.apply(variables, x) if self.has_logits else None
    else:
      out = self.module.apply(variables, x)
      feats = out[1] if self.output == "logits_features" else out
    if self.has_logits:
      logits = out[0] if self.output == "logits_features" else out
      if self.num_classes is not None:
        logits = masked_logits(logits, self.num_classes)
    return feats, logits

  @functools.cached_property
  def _jitted(self) -> Callable:
    return jax.jit(self._apply)

  def shapes(self) -> tuple[int, int | None]:
    """``(d, c or None)`` from ``jax.eval_shape``: a wrong model fails here,
    before any target net is trained."""
    s, c = self.preprocess.input_size, self.preprocess.channels
    x = jax.ShapeDtypeStruct((2, s, s, c), jnp.float32)
    try:
      feats, logits = jax.eval_shape(self._apply, self.variables, x)
    except ConfigError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise ConfigError(
          f"source {self.name!r} cannot run on a [2, {s}, {s}, {c}] input batch "
          f"({type(e).__name__}: {str(e)[:300]}). Check its preprocess "
          "(input_size, channels) and variables.") from e
    if feats.ndim != 2 or feats.shape[0] != 2 or (logits is not None and (
        logits.ndim != 2 or logits.shape[0] != 2 or logits.shape[1] < 2)):
      raise ConfigError(
          f"source {self.name!r} returns features {feats.shape}"
          + (f" and logits {logits.shape}" if logits is not None else "")
          + " for 2 images; expected [2, d] features and [2, c>=2] logits (one "
          "row per image). Check output= and the module's return value.")
    return int(feats.shape[1]), None if logits is None else int(logits.shape[1])

  def outputs(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Features ``[n, d]`` and logits ``[n, c]`` (or None) of prepared images."""
    n, b = images.shape[0], self.batch_size
    feats, logits = [], []
    for s in range(0, n, b):
      x = images[s:s + b]
      m = x.shape[0]
      if m < b and n > b:  # pad the last batch: one compiled shape
        x = np.concatenate([x, np.repeat(x[-1:], b - m, axis=0)])
      f, lg = self._jitted(self.variables, x)
      feats.append(np.asarray(f)[:m])
      if lg is not None:
        logits.append(np.asarray(lg)[:m])
    return (np.concatenate(feats),
            np.concatenate(logits) if logits else None)


def _find_layer(tree, path: str, name: str):
  node = tree
  for part in path.split("/"):
    if not isinstance(node, dict) or part not in node:
      raise ConfigError(
          f"source {name!r}: no submodule {path!r}; its layers are "
          f"{sorted(_layer_paths(tree))[:40]}.")
    node = node[part]
  if "__call__" not in node:
    raise ConfigError(f"source {name!r}: {path!r} has no __call__ output.")
  return node["__call__"][0]


def _layer_paths(tree, prefix=""):
  for k, v in tree.items():
    if k == "__call__":
      if prefix:
        yield prefix
    elif isinstance(v, dict):
      yield from _layer_paths(v, f"{prefix}/{k}" if prefix else k)


def import_factory(spec: str) -> Callable[[], Any]:
  """``"package.module:fn"`` -> the function (ConfigError naming the fix)."""
  module_name, sep, fn_name = spec.partition(":")
  if not sep or not module_name or not fn_name:
    raise ConfigError(f"flax:{spec}: write the factory as flax:package.module:function.")
  try:
    module = importlib.import_module(module_name)
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(
        f"flax:{spec}: cannot import module {module_name!r} ({type(e).__name__}: "
        f"{e}). Put its folder on PYTHONPATH (or run from it) and check that it "
        "imports on its own.") from e
  fn = getattr(module, fn_name, None)
  if not callable(fn):
    raise ConfigError(f"flax:{spec}: module {module_name!r} has no function "
                      f"{fn_name!r}.")
  return fn


def restore_variables(path: str) -> Any:
  """Variables from an orbax checkpoint folder (``{"params": ...}`` added if bare)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise CheckpointError(f"no orbax checkpoint folder at {path}.")
  try:
    tree = ocp.StandardCheckpointer().restore(path)
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f"{path}: not a readable orbax checkpoint "
                          f"({type(e).__name__}: {str(e)[:200]}).") from e
  tree = jax.tree.map(np.asarray, tree)
  return tree if isinstance(tree, dict) and "params" in tree else {"params": tree}


def load_flax_models(spec: str) -> list[FlaxModel]:
  """The models of ``package.module:fn[@CHECKPOINT]``."""
  spec, _, ckpt = spec.partition("@")
  fn = import_factory(spec)
  try:
    out = fn()
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f"flax:{spec}: the factory raised {type(e).__name__}: "
                      f"{str(e)[:300]}") from e
  models = list(out) if isinstance(out, (list, tuple)) else [out]
  if not models or not all(isinstance(m, FlaxModel) for m in models):
    raise ConfigError(
        f"flax:{spec}: the factory returned {type(out).__name__}; it must return "
        "a transferjax.sources.FlaxModel or a non-empty list of them.")
  if ckpt:
    if len(models) != 1:
      raise ConfigError(f"flax:{spec}@{ckpt}: a checkpoint folder fills one "
                        f"model, but the factory returned {len(models)}.")
    models = [dataclasses.replace(models[0], variables=restore_variables(ckpt))]
  for m in models:
    if m.variables is None:
      raise ConfigError(f"source {m.name!r} has no variables; return them from "
                        f"the factory or give a checkpoint: flax:{spec}@FOLDER.")
  return models


class FlaxGroup(SourceGroup):
  """The models of one factory; each runs on its own (no vmap across models:
  they may differ in architecture)."""

  def __init__(self, models: Sequence[FlaxModel]):
    self.models = list(models)
    self.infos = [SourceInfo(name=m.name, kind="flax", preprocess=m.preprocess,
                             num_classes=m.num_classes)
                  for m in self.models]
    self._shapes = None

  def output_shapes(self, num_rows):
    if self._shapes is None:
      self._shapes = [m.shapes() for m in self.models]
    return self._shapes

  def outputs(self, members, images, rows, *, allow_upsample=False):
    out = []
    cache = {}
    for i in members:
      m = self.models[i]
      if m.preprocess not in cache:  # models with one input share the resize
        cache[m.preprocess] = prepare_images(np.asarray(images)[rows], m.preprocess,
                                             source=f"source {m.name!r}",
                                             allow_upsample=allow_upsample)
      out.append(m.outputs(cache[m.preprocess]))
    return out
