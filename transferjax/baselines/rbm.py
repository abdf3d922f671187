"""Gaussian-Bernoulli RBM source-similarity baseline (Ammar et al. 2014).

The baseline the paper compares against (Afridi et al. 2018, Figs. 6 and 10):
train one RBM on each source task's own images; a source is "similar" to the
target when its RBM reconstructs the target images well. Score = the *negated*
reconstruction error, so that, like every score in transferjax, higher = predicted
better source.

Model (unit-variance Gaussian visibles ``v``, binary hiddens ``h``):
``E(v, h) = |v - b|^2 / 2 - c.h - v.W.h``, so ``p(h=1|v) = sigmoid(v W + c)`` and
``p(v|h) = N(W h + b, I)``. Trained with CD-1: the positive phase uses ``p(h|v0)``,
one sampled ``h0``, the reconstruction ``v1 = W h0 + b`` (the Gaussian mean, the
usual choice that avoids adding unit-variance noise to standardized pixels), and
the negative phase ``p(h|v1)``. Updates are SGD with momentum (optax) plus L2
weight decay on ``W``.

Input scaling: unit-variance Gaussian visibles need standardized data. Each RBM
stores its own task's per-pixel mean and ONE scalar std (the root mean per-pixel
variance). A per-pixel std would blow near-constant pixels (MNIST borders, std
~ 0) up into pure noise; one scalar keeps the pixels' relative scales. Target
images are standardized with the *source's* statistics (that is part of the
similarity being measured), and the reconstruction error is measured back in
pixel units (``x_hat = v_hat * std + mean``), so errors of different RBMs are on
one scale and comparable.

Many tasks at once: each task is an index set into one base image array; the
single-task trainer runs on the many-model engine (``transferjax.train.engine``)
over tasks, and task i's key is
``fold_in(root, task_id)``, so task i's RBM does not depend on which other tasks
are trained with it. Minibatches are drawn with replacement from the task's own
``length`` valid indices, so padded index sets need no masking in training.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from transferjax.errors import DataError, TrainingError
from transferjax.train import engine

__all__ = ["init_rbm", "train_rbm", "train_rbms", "reconstruction_error",
           "rbm_scores", "hidden_probs", "reconstruct"]

Params = dict[str, jax.Array]

_STATS_CHUNK = 256  # images per step when computing a task's pixel statistics
_MIN_STD = 1e-3     # a constant task (std 0) must not divide by zero


def _flatten(x: Any) -> jax.Array:
  x = jnp.asarray(x, dtype=jnp.float32)
  return x.reshape(x.shape[0], -1)


def init_rbm(key: jax.Array, num_visible: int, num_hidden: int,
             init_scale: float = 0.01) -> Params:
  """A fresh RBM: ``W ~ N(0, init_scale^2)``, zero biases, identity scaling.

  Args:
    key: PRNG key.
    num_visible: v (pixels per image).
    num_hidden: h.
    init_scale: std of the initial weights.

  Returns:
    ``{"w": [v, h], "b_vis": [v], "b_hid": [h], "mean": [v], "std": []}``.
  """
  return {"w": init_scale * jax.random.normal(key, (num_visible, num_hidden)),
          "b_vis": jnp.zeros((num_visible,)), "b_hid": jnp.zeros((num_hidden,)),
          "mean": jnp.zeros((num_visible,)), "std": jnp.ones(())}


def hidden_probs(params: Params, v: jax.Array) -> jax.Array:
  """``p(h=1 | v)`` ``[n, h]`` for standardized visibles ``v`` ``[n, v]``."""
  return jax.nn.sigmoid(v @ params["w"] + params["b_hid"])


def reconstruct(params: Params, data: Any) -> jax.Array:
  """One mean-field up-down pass, in pixel units.

  Args:
    params: one RBM.
    data: ``[n, v]`` or images ``[n, h, w, c]`` (flattened).

  Returns:
    ``[n, v]`` reconstructions ``(W p(h|v) + b) * std + mean``.
  """
  x = _flatten(data)
  v = (x - params["mean"]) / params["std"]
  v_hat = hidden_probs(params, v) @ params["w"].T + params["b_vis"]
  return v_hat * params["std"] + params["mean"]


def reconstruction_error(params: Params, data: Any) -> jax.Array:
  """Mean squared error (pixel units) of one mean-field up-down pass.

  Args:
    params: one RBM.
    data: ``[n, v]`` or images ``[n, h, w, c]``.

  Returns:
    Scalar: mean over images and pixels of ``(x - reconstruct(x))^2``.
  """
  x = _flatten(data)
  return jnp.mean((x - reconstruct(params, x)) ** 2)


def _task_stats(images: jax.Array, index_set: jax.Array,
                length: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-pixel mean and scalar std of ``images[index_set[:length]]``.

  Scans over chunks so that a vmap over many tasks never holds every task's
  gathered images at once.
  """
  num = index_set.shape[0]
  num_chunks = -(-num // _STATS_CHUNK)
  pad = num_chunks * _STATS_CHUNK - num
  idx = jnp.pad(index_set, (0, pad)).reshape(num_chunks, _STATS_CHUNK)
  valid = (jnp.arange(num_chunks * _STATS_CHUNK) < length).astype(images.dtype)
  valid = valid.reshape(num_chunks, _STATS_CHUNK)

  def body(carry, chunk):
    s, ss = carry
    i, m = chunk
    x = images[i] * m[:, None]
    return (s + x.sum(0), ss + (x * x).sum(0)), None

  zeros = jnp.zeros((images.shape[1],), images.dtype)
  (s, ss), _ = jax.lax.scan(body, (zeros, zeros), (idx, valid))
  n = length.astype(images.dtype)
  mean = s / n
  var = jnp.maximum(ss / n - mean ** 2, 0.0)
  std = jnp.maximum(jnp.sqrt(var.mean()), _MIN_STD)
  return mean, std


def _optimizer(lr: float, momentum: float) -> optax.GradientTransformation:
  return optax.sgd(lr, momentum=momentum)


_TRAINABLE = ("w", "b_vis", "b_hid")


def _train_one(active: jax.Array, state: tuple[Params, Any], key: jax.Array,
               index_set: jax.Array, length: jax.Array, images: jax.Array,
               num_steps: jax.Array, *, batch_size: int, lr: float,
               momentum: float, weight_decay: float) -> tuple[tuple, None]:
  """CD-1 for one RBM on ``images[index_set[:length]]`` from ``state``.

  The engine's single-model function (``transferjax.train.engine``); ``active``
  False leaves the state as it is. ``num_steps`` is a traced scalar (a
  ``fori_loop`` bound), so changing the training length does not recompile.
  """
  _, train_key = jax.random.split(key)
  params, opt_state = state
  mean, std = params["mean"], params["std"]
  opt = _optimizer(lr, momentum)

  def step(t, carry):
    params, opt_state = carry
    k_batch, k_hid = jax.random.split(jax.random.fold_in(train_key, t))
    pos = jax.random.randint(k_batch, (batch_size,), 0, length)
    v0 = (images[index_set[pos]] - mean) / std
    h0p = hidden_probs(params, v0)
    h0 = jax.random.bernoulli(k_hid, h0p).astype(v0.dtype)
    v1 = h0 @ params["w"].T + params["b_vis"]
    h1p = hidden_probs(params, v1)
    # CD-1 estimate of the log-likelihood gradient; optax minimizes, so negate.
    grads = {"w": -(v0.T @ h0p - v1.T @ h1p) / batch_size
                  + weight_decay * params["w"],
             "b_vis": -(v0 - v1).mean(0), "b_hid": -(h0p - h1p).mean(0)}
    updates, opt_state = opt.update(grads, opt_state)
    new = optax.apply_updates({k: params[k] for k in _TRAINABLE}, updates)
    return {**params, **new}, opt_state

  new = jax.lax.fori_loop(0, num_steps, step, (params, opt_state))
  return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, state), None


_STATIC = ("num_hidden", "batch_size", "lr", "momentum", "weight_decay",
           "init_scale", "model_loop")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _train_many(keys, images, index_sets, lengths, num_steps, *, num_hidden,
                batch_size, lr, momentum, weight_decay, init_scale,
                model_loop="vmap"):
  """Every task's RBM on the many-model engine (all models train ``num_steps``).

  ``model_loop`` stays ``"vmap"`` on every backend: a CD-1 step is a few dense
  matmuls, which batch well over models on CPU too (no grouped convolutions, the
  reason the CNNs loop with ``"map"`` on CPU), and it keeps the RBM scores the
  same bits as before the engine (``"map"`` differs by ~3e-8).
  """
  def init(key, index_set, length):
    init_key, _ = jax.random.split(key)
    params = init_rbm(init_key, images.shape[1], num_hidden, init_scale)
    mean, std = _task_stats(images, index_set, length)
    params = {**params, "mean": mean, "std": std}
    opt_state = _optimizer(lr, momentum).init({k: params[k] for k in _TRAINABLE})
    return params, opt_state

  state = jax.vmap(init)(keys, index_sets, lengths)
  one = functools.partial(_train_one, batch_size=batch_size, lr=lr,
                          momentum=momentum, weight_decay=weight_decay)
  many = engine.over_models(one, 3, model_loop)
  active = jnp.ones(keys.shape[:1], bool)
  (params, _), _ = many(active, state, keys, index_sets, lengths, images, num_steps)
  return params


def _check_finite_params(params: Params, what: str) -> None:
  if not all(bool(jnp.all(jnp.isfinite(v))) for v in params.values()):
    raise TrainingError(f"{what} diverged (non-finite weights); lower lr "
                        "(5e-3 is stable on standardized pixels) or the momentum.")


def train_rbms(key: jax.Array, images: Any, index_sets: Any, lengths: Any,
               task_ids: Any, *, num_hidden: int = 64, epochs: int = 10,
               batch_size: int = 32, lr: float = 5e-3, momentum: float = 0.9,
               weight_decay: float = 1e-4, init_scale: float = 0.01,
               num_steps: int | None = None) -> Params:
  """One RBM per source task, all trained at once (vmapped CD-1).

  Args:
    key: root PRNG key; task i uses ``fold_in(key, task_ids[i])``.
    images: ``[N, v]`` or ``[N, h, w, c]`` base array shared by all tasks.
    index_sets: int ``[q, L]`` rows of ``images`` per task, padded past
      ``lengths[i]`` with any valid index (e.g. 0).
    lengths: int ``[q]`` valid entries per task (``1 <= lengths[i] <= L``).
    task_ids: int ``[q]`` stable task ids.
    num_hidden: hidden units per RBM.
    epochs: passes over the *padded* length: ``num_steps = epochs * ceil(L /
      batch_size)`` (every task gets the same number of steps).
    batch_size: minibatch size (drawn with replacement).
    lr: SGD learning rate.
    momentum: SGD momentum.
    weight_decay: L2 coefficient on ``W``.
    init_scale: std of the initial weights.
    num_steps: overrides ``epochs``.

  Returns:
    Stacked params, each leaf with a leading ``[q]`` axis.

  Raises:
    DataError: bad shapes, lengths or indices.
    TrainingError: non-finite weights after training.
  """
  x = _flatten(images)
  if not bool(jnp.all(jnp.isfinite(x))):
    raise DataError("images contain NaN/inf; clean the base array first.")
  idx = np.asarray(index_sets)
  lens = np.asarray(lengths)
  ids = np.asarray(task_ids)
  if idx.ndim != 2 or lens.shape != (idx.shape[0],) or ids.shape != lens.shape:
    raise DataError(f"Need index_sets [q, L], lengths [q], task_ids [q]; got "
                    f"{idx.shape}, {lens.shape}, {ids.shape}.")
  if np.any(lens < 1) or np.any(lens > idx.shape[1]):
    raise DataError(f"Every length must be in [1, L={idx.shape[1]}]; got "
                    f"min {lens.min()}, max {lens.max()}.")
  if np.any((idx < 0) | (idx >= x.shape[0])):
    raise DataError(f"index_sets must index rows of images [0, {x.shape[0]}); "
                    f"got range [{idx.min()}, {idx.max()}] (pad with 0, not -1).")
  steps = num_steps if num_steps is not None else epochs * math.ceil(
      idx.shape[1] / batch_size)
  keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(
      key, jnp.asarray(ids, dtype=jnp.uint32))
  params = _train_many(keys, x, jnp.asarray(idx, jnp.int32),
                       jnp.asarray(lens, jnp.int32), jnp.int32(steps),
                       num_hidden=num_hidden, batch_size=batch_size, lr=lr,
                       momentum=momentum, weight_decay=weight_decay,
                       init_scale=init_scale)
  _check_finite_params(params, "An RBM")
  return params


def train_rbm(key: jax.Array, data: Any, *, num_hidden: int = 64, epochs: int = 10,
              batch_size: int = 32, lr: float = 5e-3, momentum: float = 0.9,
              weight_decay: float = 1e-4, init_scale: float = 0.01,
              num_steps: int | None = None) -> Params:
  """One RBM on ``data`` (CD-1). Same code path as :func:`train_rbms`.

  ``train_rbm(fold_in(root, task_id), images[idx[:n]], num_steps=s)`` equals task
  i of ``train_rbms(root, images, ..., num_steps=s)`` up to float rounding.

  Args:
    key: PRNG key of this RBM.
    data: ``[n, v]`` or images ``[n, h, w, c]``.
    num_hidden, epochs, batch_size, lr, momentum, weight_decay, init_scale,
      num_steps: as in :func:`train_rbms` (``epochs`` counts passes over n).

  Returns:
    One RBM's params.
  """
  x = _flatten(data)
  n = x.shape[0]
  if n < 1:
    raise DataError("train_rbm needs at least one image.")
  if not bool(jnp.all(jnp.isfinite(x))):
    raise DataError("data contain NaN/inf; clean them first.")
  steps = num_steps if num_steps is not None else epochs * math.ceil(n / batch_size)
  params = _train_many(key[None], x, jnp.arange(n, dtype=jnp.int32)[None],
                       jnp.asarray([n], jnp.int32), jnp.int32(steps),
                       num_hidden=num_hidden, batch_size=batch_size, lr=lr,
                       momentum=momentum, weight_decay=weight_decay,
                       init_scale=init_scale)
  params = jax.tree.map(lambda a: a[0], params)
  _check_finite_params(params, "The RBM")
  return params


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _errors(params_stack, x, chunk_size):
  return jax.lax.map(lambda p: reconstruction_error(p, x), params_stack,
                     batch_size=chunk_size)


def rbm_scores(params_stack: Params, target_images: Any, *,
               chunk_size: int = 64) -> jax.Array:
  """Ammar-style similarity of each source RBM to the target images.

  Args:
    params_stack: params from :func:`train_rbms` (leading ``[q]`` axis).
    target_images: ``[n, v]`` or ``[n, h, w, c]`` target images (the paper uses
      the target's training data).
    chunk_size: RBMs evaluated at once (bounds memory: ``chunk * n * h``).

  Returns:
    ``[q]`` scores = minus the reconstruction error (higher = more similar).
  """
  x = _flatten(target_images)
  q, v = params_stack["w"].shape[:2]
  if x.shape[1] != v:
    raise DataError(f"Target images have {x.shape[1]} pixels but the RBMs were "
                    f"trained on {v}; resize the target to the source image size.")
  return -_errors(params_stack, x, min(chunk_size, q))
