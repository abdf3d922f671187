"""The single-model train step, its vmapped multi-model runner, and evaluation.

Layering (each piece is reused by the zoo trainer, source fine-tuning and the
target net N_t):

* ``make_train_step(model, tx)``: one optimizer step of ONE model on a batch of
  rows of a base image array; ``active=False`` leaves the state bit-identical, so
  finished (or early-stopped) models can ride along in a vmapped stack.
* ``sample_batch``: the rows a model sees at its own step ``t``: a per-epoch
  permutation of the task's own rows, drawn on device from the step key of the
  epoch's first step. Depends only on ``(model_key, t, n)``, never on the padded
  length or on the other models, so a model trains identically alone or in a chunk.
* ``make_multi_step_runner``: (sample + step) lifted over a leading model axis
  by the many-model engine (``transferjax.train.engine``: ``jax.vmap``, or with
  ``model_loop="map"`` a ``lax.map`` loop inside the program), ``steps_per_call`` steps per call via ``lax.scan``, jitted with the state
  donated.
* ``make_evaluator``: vmapped loss/accuracy of every model on its own index array.

Task arrays (a plain dict; leading ``[q]`` model axis once stacked):
  ``idx [L]`` int32 rows of the base image array (padded with 0),
  ``labels [L]`` int32 task labels aligned with ``idx`` (padded with 0),
  ``n []`` int32 true number of rows, ``num_classes []`` int32,
  ``num_steps []`` int32 steps to train (``epochs * ceil(n / batch)``; 0 = never).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from transferjax import backend
from transferjax.train import engine
from transferjax.models import masked_logits

State = dict[str, Any]  # {"params": pytree, "opt": optax state}


def cross_entropy(logits: jax.Array, labels: jax.Array, num_classes: jax.Array,
                  weights: jax.Array | None = None) -> jax.Array:
  """Mean (optionally weighted) cross-entropy over a padded head.

  Args:
    logits: ``[b, max_classes]``.
    labels: int ``[b]`` in ``[0, num_classes)``.
    num_classes: scalar; columns ``>= num_classes`` are masked out.
    weights: optional ``[b]`` in {0, 1} (0 = padding row of a short last batch).

  Returns:
    scalar loss; equals the loss on ``logits[:, :num_classes]``.
  """
  ce = optax.softmax_cross_entropy_with_integer_labels(
      masked_logits(logits, num_classes), labels)
  if weights is None:
    return jnp.mean(ce)
  return jnp.sum(ce * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def make_optimizer(learning_rate: float = 1e-3) -> optax.GradientTransformation:
  """Adam, the paper's (and the reference configuration's) optimizer."""
  return optax.adam(learning_rate)


def make_init(model, tx: optax.GradientTransformation, image_size: int
              ) -> Callable[[jax.Array], State]:
  """``init(rng) -> {"params", "opt"}`` for one model (vmap it over keys)."""
  def init(rng: jax.Array) -> State:
    params = model.init(rng, jnp.zeros((1, image_size, image_size, 1)))["params"]
    return {"params": params, "opt": tx.init(params)}
  return init


def make_train_step(model, tx: optax.GradientTransformation) -> Callable:
  """The pure single-model train step.

  Returns:
    ``train_step(state, batch_idx, images, labels, num_classes, rng, active,
    weights=None) -> (state, metrics)`` where ``batch_idx`` is int ``[b]`` rows of
    the base array ``images [N, h, w, 1]``, ``labels`` int ``[b]`` their task
    labels, ``num_classes`` a scalar array, ``rng`` the step key (reserved for
    stochastic layers; these CNNs have none), ``active`` a bool scalar (False:
    state returned unchanged), ``weights`` optional ``[b]`` row weights.
    ``metrics = {"loss": [], "accuracy": []}`` on the batch (before the update).
  """
  def train_step(state, batch_idx, images, labels, num_classes, rng, active,
                 weights=None):
    del rng  # No dropout etc.; kept so callers thread the step key already.
    x = images[batch_idx]

    def loss_fn(params):
      logits, _ = model.apply({"params": params}, x)
      return cross_entropy(logits, labels, num_classes, weights), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"])
    updates, opt = tx.update(grads, state["opt"], state["params"])
    new_state = {"params": optax.apply_updates(state["params"], updates),
                 "opt": opt}
    # A finished model keeps its exact state (Adam's count included).
    new_state = jax.tree.map(lambda new, old: jnp.where(active, new, old),
                             new_state, state)
    correct = jnp.argmax(masked_logits(logits, num_classes), -1) == labels
    w = jnp.ones_like(loss, shape=labels.shape) if weights is None else weights
    accuracy = jnp.sum(correct * w) / jnp.maximum(jnp.sum(w), 1.0)
    return new_state, {"loss": loss, "accuracy": accuracy}

  return train_step


def epoch_permutation(rng: jax.Array, n: jax.Array, length: int) -> jax.Array:
  """``[length]`` int32: a random order of ``0..n-1``, then ``n..length-1``.

  Row j's sort key is drawn from ``fold_in(rng, j)``, so the first ``n`` entries
  do not depend on ``length`` (the padded length of whatever chunk holds the
  task). Ties between real rows keep index order (stable sort); padding rows get
  the largest key and their higher index keeps them last.
  """
  rows = jnp.arange(length)
  bits = jax.vmap(lambda j: jax.random.bits(jax.random.fold_in(rng, j),
                                            dtype=jnp.uint32))(rows)
  bits = jnp.where(rows < n, bits, jnp.uint32(np.iinfo(np.uint32).max))
  return jnp.argsort(bits, stable=True).astype(jnp.int32)


def _epoch_of(step: jax.Array, n: jax.Array, batch_size: int
              ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(epoch, step within the epoch, steps per epoch)`` of a model's ``step``."""
  steps_per_epoch = jnp.maximum((n + batch_size - 1) // batch_size, 1)
  return step // steps_per_epoch, step % steps_per_epoch, steps_per_epoch


def _padded_epoch_order(model_key: jax.Array, epoch: jax.Array,
                        steps_per_epoch: jax.Array, n: jax.Array, length: int,
                        batch_size: int) -> jax.Array:
  """``[length + batch_size]`` int32: epoch ``epoch``'s permutation (drawn from
  the key of its first step), then ``batch_size`` zeros for a short last batch."""
  perm = epoch_permutation(jax.random.fold_in(model_key, epoch * steps_per_epoch),
                           n, length)
  return jnp.concatenate([perm, jnp.zeros((batch_size,), jnp.int32)])


def _batch_from_order(order: jax.Array, within: jax.Array, n: jax.Array,
                      batch_size: int) -> tuple[jax.Array, jax.Array]:
  """``(positions [b], weights [b])`` of batch ``within`` of an epoch's order."""
  start = within * batch_size
  positions = lax.dynamic_slice(order, (start,), (batch_size,))
  weights = ((start + jnp.arange(batch_size)) < n).astype(jnp.float32)
  return positions, weights


def sample_batch(model_key: jax.Array, step: jax.Array, n: jax.Array, length: int,
                 batch_size: int) -> tuple[jax.Array, jax.Array]:
  """Positions (into the task's index array) of the batch at the model's ``step``.

  Epoch ``e = step // ceil(n / b)`` visits the rows in the permutation drawn from
  ``fold_in(model_key, e * ceil(n / b))`` (the step key of the epoch's first
  step); the last batch of an epoch is short and its missing rows get weight 0.

  Returns:
    ``(positions [b] int32, weights [b] float32)``.
  """
  epoch, within, steps_per_epoch = _epoch_of(step, n, batch_size)
  order = _padded_epoch_order(model_key, epoch, steps_per_epoch, n, length,
                              batch_size)
  return _batch_from_order(order, within, n, batch_size)


MODEL_LOOPS = engine.MODEL_LOOPS


default_model_loop = backend.default_model_loop


def make_multi_step_runner(model, tx: optax.GradientTransformation, batch_size: int,
                           steps_per_call: int, unroll: int = 1,
                           model_loop: str = "vmap",
                           mesh: Mesh | None = None) -> Callable:
  """Jitted ``run(state, tasks, model_keys, t0, images, model_active)``.

  Runs global steps ``t0 .. t0 + steps_per_call - 1`` for a ``[q]`` stack of
  models. Model i takes its own step ``t`` while ``t < tasks["num_steps"][i]`` and
  ``model_active[i]``; otherwise its state is untouched (no recompilation when
  models finish at different times; a caller doing early stopping flips
  ``model_active``).

  ``model_loop="vmap"`` batches the models (one batched op per layer: the
  accelerator path). ``"map"`` loops over them inside the compiled program
  (``lax.map``), each model taking all of the call's steps in turn: every op is
  a single-model op, so convolutions stay plain convolutions on XLA:CPU instead
  of grouped ones, and an inactive model skips its steps (``lax.cond``) instead
  of computing them and discarding them.
  Both give model i the same result as ``make_train_step`` alone (to float
  rounding). With ``mesh`` (a 1-D ``("models",)`` mesh of several devices) and
  ``"map"``, each device loops over its own share of the models (``shard_map``:
  the SPMD partitioner cannot split a ``lax.map``); on a CPU with one device per
  core that runs the shares in parallel (docs/notes/speed.md). ``"vmap"`` needs no
  wrapper: a jit over sharded inputs splits it.

  Args (of the returned function):
    state: ``{"params", "opt"}`` with a leading ``[q]`` axis (donated).
    tasks: task arrays (module docstring) with a leading ``[q]`` axis.
    model_keys: ``[q, 2]`` uint32 model keys ``fold_in(root, task_id)``.
    t0: int32 scalar, the first global step of this call.
    images: ``[N, h, w, 1]`` base image array (shared by all models).
    model_active: bool ``[q]``.

  Returns:
    ``(state, losses [steps_per_call, q])``; a loss is 0 where the model was
    inactive, so any non-finite entry is a real divergence.
  """
  engine.check_model_loop(model_loop)
  train_step = make_train_step(model, tx)

  def one_model(active, carry, task, model_key, t, images):
    # carry = (state, order, order_epoch): the epoch's row order is drawn once
    # per epoch and call (a sort of the task's rows: ~4% of a CPU step if drawn
    # every step), the same rows sample_batch gives for step t.
    state, order, order_epoch = carry
    length = task["idx"].shape[0]
    epoch, within, steps_per_epoch = _epoch_of(t, task["n"], batch_size)
    order = lax.cond(
        epoch == order_epoch, lambda: order,
        lambda: _padded_epoch_order(model_key, epoch, steps_per_epoch, task["n"],
                                    length, batch_size))
    positions, weights = _batch_from_order(order, within, task["n"], batch_size)
    state, metrics = train_step(
        state, task["idx"][positions], images, task["labels"][positions],
        task["num_classes"], jax.random.fold_in(model_key, t), active, weights)
    return (state, order, epoch), jnp.where(active, metrics["loss"], 0.0)

  def no_order(length):  # Epoch -1: the first step draws the model's order.
    return jnp.zeros((length + batch_size,), jnp.int32), jnp.int32(-1)

  if model_loop == "vmap":  # Steps outer, one batched op per layer and step.
    many = engine.over_models(one_model, 2, "vmap")

    def run(state, tasks, model_keys, t0, images, model_active):
      def body(carry, t):
        active = (t < tasks["num_steps"]) & model_active
        return many(active, carry, tasks, model_keys, t, images)
      orders = jax.vmap(lambda _: no_order(tasks["idx"].shape[1]))(tasks["n"])
      steps = t0 + jnp.arange(steps_per_call, dtype=jnp.int32)
      (state, _, _), losses = lax.scan(body, (state,) + orders, steps,
                                       unroll=unroll)
      return state, losses
  else:
    # Models outer: each model runs all of the call's steps before the next
    # (the same ops per step), so its state is sliced from and written back to
    # the stack once per call instead of at every step (docs/notes/zoospeed.md).
    def one_call(active, state, task, model_key, t0, images):
      # over_models("map") runs one_call only for an active model; a literal
      # True inside the step's branch lets XLA drop train_step's keep-old-state
      # select (passed in from outside it would reach the branch as an operand).
      del active

      def body(carry, t):
        return lax.cond(
            t < task["num_steps"],
            lambda c: one_model(jnp.bool_(True), c, task, model_key, t, images),
            lambda c: (c, jnp.float32(0.0)), carry)
      steps = t0 + jnp.arange(steps_per_call, dtype=jnp.int32)
      (state, _, _), losses = lax.scan(
          body, (state,) + no_order(task["idx"].shape[0]), steps, unroll=unroll)
      return state, losses

    many = engine.over_models(one_call, 2, "map")

    def run(state, tasks, model_keys, t0, images, model_active):
      state, losses = many(model_active, state, tasks, model_keys, t0, images)
      return state, losses.T

  if model_loop == "map":  # "vmap" needs no wrapper: jit splits sharded inputs.
    run = engine.shard_over_models(
        run, mesh, (True, True, True, False, False, True),
        (engine.MODELS, P(None, "models")))
  return jax.jit(run, donate_argnums=0)


def make_evaluator(model, eval_batch: int = 256) -> Callable:
  """Jitted ``evaluate(params, idx, labels, n, num_classes, images)``.

  Every argument but ``images`` has a leading ``[q]`` model axis; ``idx``/``labels``
  are ``[q, L]`` with ``L`` a multiple of ``eval_batch``.

  Returns:
    ``{"loss": [q], "accuracy": [q]}`` over each model's first ``n`` rows (NaN
    where ``n == 0``).
  """
  def one_model(params, idx, labels, n, num_classes, images):
    num_blocks = idx.shape[0] // eval_batch

    def body(carry, i):
      rows = lax.dynamic_slice(idx, (i * eval_batch,), (eval_batch,))
      lab = lax.dynamic_slice(labels, (i * eval_batch,), (eval_batch,))
      w = ((i * eval_batch + jnp.arange(eval_batch)) < n).astype(jnp.float32)
      logits, _ = model.apply({"params": params}, images[rows])
      logits = masked_logits(logits, num_classes)
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, lab)
      correct = (jnp.argmax(logits, -1) == lab).astype(jnp.float32)
      return (carry[0] + jnp.sum(ce * w), carry[1] + jnp.sum(correct * w)), None

    (loss_sum, correct_sum), _ = lax.scan(
        body, (jnp.float32(0), jnp.float32(0)), jnp.arange(num_blocks))
    denom = jnp.where(n > 0, n, 1).astype(jnp.float32)
    nan = jnp.float32(jnp.nan)
    return {"loss": jnp.where(n > 0, loss_sum / denom, nan),
            "accuracy": jnp.where(n > 0, correct_sum / denom, nan)}

  return jax.jit(jax.vmap(one_model, in_axes=(0, 0, 0, 0, 0, None)))


def make_stack_apply(model, eval_batch: int = 256) -> Callable:
  """Jitted ``apply(params [q, ...], images [n, h, w, 1]) -> (logits, features)``.

  ``n`` must be a multiple of ``eval_batch``; returns ``[q, n, max_classes]`` and
  ``[q, n, 200]``. Images are processed ``eval_batch`` at a time (``lax.map``) to
  bound activation memory.
  """
  def one_model(params, images):
    batches = images.reshape((-1, eval_batch) + images.shape[1:])
    logits, feats = lax.map(lambda x: model.apply({"params": params}, x), batches)
    return (logits.reshape((-1,) + logits.shape[2:]),
            feats.reshape((-1,) + feats.shape[2:]))

  return jax.jit(jax.vmap(one_model, in_axes=(0, None)))
