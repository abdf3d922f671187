"""The many-model engine: one single-model function run over a stack of models.

Zoo training (``step.make_multi_step_runner``), fine-tuning and the target net
(``transfer.fit``) and the RBM baseline (``baselines.rbm``) all train ``[q]``
stacks of small models the same way:

* state (params, optimizer state) is a plain pytree with a leading ``[q]`` model
  axis;
* a single-model function ``one(active, state, *model_args, *shared)`` is
  lifted over that axis by ``over_models``, with ``jax.vmap`` (batched ops: the
  accelerator path) or ``lax.map`` (a loop over models inside the compiled
  program: the CPU path, where every op stays a plain single-model op and a
  model whose ``active`` flag is False skips its work through ``lax.cond``);
  ``transferjax.backend.default_model_loop`` picks one per backend;
* ``shard_over_models`` splits the model axis over a 1-D ``("models",)`` mesh:
  with one CPU device per core each core loops over its own share of the models
  (``shard_map``, since the SPMD partitioner cannot split a ``lax.map``);
* a per-model bool ``model_active`` mask says which models still train, and
  ``EarlyStopping`` is the policy that turns validation losses into that mask
  (patience, best-epoch snapshot), so no code loops over models in Python.

``one`` must leave the state unchanged when ``active`` is False (the vmapped path
computes every model and relies on it); under ``lax.map`` it is only called with
``active=True``, so model i gets the same ops, and so the same numbers, alone, in
a stack, or in a device's share of one.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

MODEL_LOOPS = ("vmap", "map")


def check_model_loop(model_loop: str) -> None:
  if model_loop not in MODEL_LOOPS:
    raise ValueError(f"Unknown model_loop {model_loop!r}; choose one of "
                     f"{MODEL_LOOPS}.")


def over_models(one: Callable, num_model_args: int, model_loop: str) -> Callable:
  """Lift ``one(active, state, *model_args, *shared) -> (state, out)`` to a stack.

  Args:
    one: the single-model function; ``active`` is a bool scalar, ``state`` and
      the first ``num_model_args`` further arguments are one model's slices, the
      rest are shared by every model (data, the step counter).
    num_model_args: how many arguments after ``state`` carry the model axis.
    model_loop: ``"vmap"`` or ``"map"`` (``MODEL_LOOPS``).

  Returns:
    ``many(active [q], state [q, ...], *model_args [q, ...], *shared)
    -> (state [q, ...], out [q, ...])``; ``out`` is zeros for an inactive model
    under ``"map"`` (it never ran), whatever ``one`` returned under ``"vmap"``.
  """
  check_model_loop(model_loop)
  if model_loop == "vmap":
    axes = (0, 0) + (0,) * num_model_args

    def many(active, state, *args):
      shared = len(args) - num_model_args
      return jax.vmap(one, in_axes=axes + (None,) * shared)(active, state, *args)
    return many

  def many(active, state, *args):
    model_args, shared = args[:num_model_args], args[num_model_args:]

    def step(xs):
      act, st, margs = xs
      run = lambda s, *a: one(jnp.bool_(True), s, *a, *shared)

      def skip(s, *a):
        out = jax.eval_shape(run, s, *a)[1]
        return s, jax.tree.map(lambda o: jnp.zeros(o.shape, o.dtype), out)
      # A stopped model costs nothing (under vmap, cond would compute both).
      return lax.cond(act, run, skip, st, *margs)

    return lax.map(step, (active, state, tuple(model_args)))
  return many


def apply_models(fn: Callable, num_model_args: int, model_loop: str) -> Callable:
  """Lift a stateless ``fn(*model_args, *shared) -> out`` (inference) to a stack.

  Returns ``many(*model_args [q, ...], *shared) -> out [q, ...]``: ``jax.vmap``,
  or with ``"map"`` a ``lax.map`` over the models (single-model ops, so model i's
  output does not depend on the stack it is in).
  """
  check_model_loop(model_loop)

  def many(*args):
    model_args, shared = args[:num_model_args], args[num_model_args:]
    if model_loop == "vmap":
      return jax.vmap(lambda *m: fn(*m, *shared))(*model_args)
    return lax.map(lambda m: fn(*m, *shared), tuple(model_args))
  return many


def shard_over_models(fn: Callable, mesh: Mesh | None, model_in: Sequence[bool],
                      model_out: Any) -> Callable:
  """``fn`` with its model axis split over ``mesh`` (a no-op on one device).

  Args:
    fn: a function of stacked (``[q, ...]``) and shared arguments.
    mesh: a 1-D ``("models",)`` mesh, or None.
    model_in: per positional argument, True if it carries the model axis
      (sharded) and False if it is shared (replicated).
    model_out: a pytree prefix of ``fn``'s output of ``PartitionSpec``s (use
      ``MODELS`` for a leading model axis, ``P()`` for a replicated value).

  Each device runs ``fn`` on its share of the models; ``q`` must be a multiple
  of the device count (``pad_models``).
  """
  if mesh is None or mesh.devices.size <= 1:
    return fn
  in_specs = tuple(MODELS if m else P() for m in model_in)
  # check_vma off: lax.cond's branches differ only in their varying axes.
  return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=model_out,
                       check_vma=False)


MODELS = P("models")


def padded_count(num_models: int, mesh: Mesh | None) -> int:
  """``num_models`` rounded up to a multiple of the mesh's devices."""
  d = 1 if mesh is None else int(mesh.devices.size)
  return -(-max(num_models, 1) // d) * d


def pad_models(tree: Any, count: int) -> Any:
  """Every leaf's leading axis extended to ``count`` with copies of entry 0 (the
  caller keeps them inactive)."""
  def pad(x):
    x = jnp.asarray(x)
    extra = count - x.shape[0]
    if extra <= 0:
      return x
    return jnp.concatenate([x, jnp.broadcast_to(x[:1], (extra,) + x.shape[1:])])
  return jax.tree.map(pad, tree)


def select_models(mask: jax.Array, new: Any, old: Any) -> Any:
  """Per model ``i``: ``new[i]`` where ``mask[i]`` else ``old[i]`` (a snapshot)."""
  return jax.tree.map(
      lambda a, b: jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
      new, old)


@dataclasses.dataclass
class EarlyStopping:
  """Patience on a validation loss, as a policy over the ``model_active`` mask.

  Host-side and vectorized over models (``[q]`` numpy arrays, float64 losses):
  after each epoch ``update`` says which models improved (their parameters are
  the new best snapshot) and ``active`` which models still train.

  Attributes:
    patience: epochs without a lower validation loss before a model stops.
    min_delta: a loss must fall by more than this to count as an improvement.
    best_loss, best_epoch, wait, epochs_run: ``[q]`` per-model state.
    active: ``[q]`` bool, the models still early-stopping.
  """
  patience: int
  best_loss: np.ndarray
  best_epoch: np.ndarray
  wait: np.ndarray
  epochs_run: np.ndarray
  active: np.ndarray
  min_delta: float = 1e-7

  @classmethod
  def start(cls, num_models: int, patience: int,
            min_delta: float = 1e-7) -> "EarlyStopping":
    return cls(patience=patience, best_loss=np.full(num_models, np.inf),
               best_epoch=np.zeros(num_models, np.int32),
               wait=np.zeros(num_models, np.int32),
               epochs_run=np.zeros(num_models, np.int32),
               active=np.ones(num_models, bool), min_delta=min_delta)

  def update(self, epoch: int, val_loss: np.ndarray) -> np.ndarray:
    """Record epoch ``epoch``'s ``[q]`` validation losses; returns ``improved
    [q]`` (the models whose parameters become their best snapshot)."""
    improved = self.active & (val_loss < self.best_loss - self.min_delta)
    self.best_loss = np.where(improved, val_loss, self.best_loss)
    self.best_epoch = np.where(improved, epoch, self.best_epoch)
    self.wait = np.where(improved, 0, self.wait + self.active)
    self.epochs_run = np.where(self.active, epoch, self.epochs_run)
    self.active = self.active & (self.wait < self.patience)
    return improved
