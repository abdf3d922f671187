"""PACTran-Gauss (Ding et al., ECCV 2022), diagonal-Gaussian prior version.

As google-research/pactran_metrics ``calculate_pac_gauss``: centre the
features; fit an L2-regularised softmax regression (mean cross-entropy +
||W||^2 / (2 lambda), lambda = lda_factor * n, bias unregularised); then
PAC = L_opt + (k d / (2 lambda)) * s2 * log(sigma^-2), with
sigma^-2 = sum(diag Hessian) * lambda / (k d) + 1e-10, k = C classes, d the
feature dimension and s2 = s2_factor / d. The paper's score is **lower is
better**; :func:`pactran_gauss` returns its negation so that higher is better.

Differences, on purpose: L-BFGS is optax's (backtracking line search) started
at zero and run to a gradient-norm tolerance (1e-6), not scipy's L-BFGS-B from a random
start capped at 100 iterations; the objective is strictly convex in W, so both
reach the same optimum when converged. The features are not mutated.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from transferjax.errors import EstimatorError
from transferjax.metrics import _common

# The reference pairs each lda_factor with two s2 factors and reports the first.
_S2_FACTOR = {10.0: 1000.0, 1.0: 100.0, 0.1: 10.0}


def _loss(theta, x, onehot, lam):
  w, b = theta
  logits = x @ w + b
  xent = -jnp.sum(onehot * jax.nn.log_softmax(logits, axis=1)) / x.shape[0]
  return xent + 0.5 * jnp.sum(w * w) / lam


def pactran_gauss_core(features: jax.Array, labels: jax.Array, *, num_classes: int,
                       lda_factor: float = 1.0, max_iter: int = 500,
                       tol: float = 1e-6) -> jax.Array:
  """Negated PACTran-Gauss for one source; pure and jittable."""
  x = _common.as_float(features)
  x = x - x.mean(0)
  n, d = x.shape
  onehot = jax.nn.one_hot(labels, num_classes, dtype=x.dtype)
  lam = lda_factor * n
  fun = lambda th: _loss(th, x, onehot, lam)
  # Backtracking (Armijo) line search: compiles far faster than the zoom search.
  opt = optax.lbfgs(linesearch=optax.scale_by_backtracking_linesearch(
      max_backtracking_steps=30, store_grad=True))
  value_and_grad = optax.value_and_grad_from_state(fun)
  theta0 = (jnp.zeros((d, num_classes), x.dtype), jnp.zeros((num_classes,), x.dtype))

  def cond(carry):
    _, _, it, gnorm = carry
    return (it < max_iter) & (gnorm > tol)

  def body(carry):
    theta, state, it, _ = carry
    value, grad = value_and_grad(theta, state=state)
    updates, state = opt.update(grad, state, theta, value=value, grad=grad, value_fn=fun)
    theta = optax.apply_updates(theta, updates)
    return theta, state, it + 1, optax.tree_utils.tree_norm(grad)

  theta, _, _, _ = jax.lax.while_loop(
      cond, body, (theta0, opt.init(theta0), 0, jnp.asarray(jnp.inf, x.dtype)))
  pac_opt = fun(theta)
  w, b = theta
  p = jax.nn.softmax(x @ w + b, axis=1)
  g2 = p - p**2                                                  # [n, k]
  h_w = (x * x).T @ g2 + 1.0 / lam                               # diag Hessian, W
  h_b = g2.sum(0)                                                # diag Hessian, b
  kd = d * num_classes
  sigma2_inv = (h_w.sum() + h_b.sum()) * lam / kd + 1e-10
  s2 = _S2_FACTOR[float(lda_factor)] / d
  return -(pac_opt + 0.5 * kd / lam * s2 * jnp.log(sigma2_inv))


_pactran_jit = jax.jit(pactran_gauss_core, static_argnames=(
    "num_classes", "lda_factor", "max_iter", "tol"))


def pactran_gauss(features: Any, labels: Any, *, lda_factor: float = 1.0,
                  num_classes: int | None = None, max_iter: int = 500,
                  tol: float = 1e-6):
  """Negated PACTran-Gauss: higher is better (the paper's value is lower-better).

  Args:
    features: `[n, d]` source features on the target images.
    labels: `[n]` target labels in 0..C-1.
    lda_factor: prior strength factor, one of 10, 1 (default) or 0.1 (the
      values the reference defines s2 for).
    num_classes: C; required only under jit/vmap.
    max_iter: maximum L-BFGS iterations.
    tol: stop when the gradient norm falls below this.

  Returns:
    -PAC_Gauss (NumPy float64 when called eagerly).
  """
  if float(lda_factor) not in _S2_FACTOR:
    raise EstimatorError(f"pactran_gauss: lda_factor must be one of "
                         f"{sorted(_S2_FACTOR)}, got {lda_factor}.")
  if _common.is_traced(features, labels):
    return pactran_gauss_core(
        features, labels, lda_factor=float(lda_factor), max_iter=max_iter, tol=tol,
        num_classes=_common.require_num_classes(num_classes, "pactran_gauss"))
  f, y, c = _common.check_features(features, labels, "pactran_gauss",
                                   num_classes=num_classes)
  return _common.run_eager(_pactran_jit, f, y, num_classes=c,
                           lda_factor=float(lda_factor), max_iter=max_iter, tol=tol)
