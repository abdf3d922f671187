"""LogME (You et al., ICML 2021; fixed-point solver of JMLR 2022, Alg. 3).

Per class c, a Bayesian linear regression of the one-hot column y_c on the
features, y = f w + eps with w ~ N(0, 1/alpha I), eps ~ N(0, 1/beta); alpha
and beta maximise the evidence by fixed-point iteration over the eigenvalues
sigma_i of f^T f (one SVD serves every class). The score is the mean over
classes of the maximised log evidence divided by n. Higher is better.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from transferjax.metrics import _common

_EPS = 1e-5          # thuml's guard on both denominators (TLlib's copy lacks it).
_MAX_ITER = 11       # thuml: "should converge after at most 10 steps".
_TOL = 1e-3          # relative change of alpha / beta.
_SV_FLOOR = 1e-10    # singular values treated as zero (thuml's truncated_svd).


def _class_evidence(x2, sigma, valid, y_sq, n, d):
  """Fixed point for one class column; returns the evidence / n."""
  res_x2 = y_sq - x2.sum()   # part of ||y||^2 outside the feature column space

  def terms(alpha, beta):
    t = alpha / beta
    gamma = jnp.sum(sigma / (sigma + t))
    m2 = jnp.sum(sigma * x2 / (t + sigma) ** 2)
    res2 = jnp.sum(x2 / (1 + sigma / t) ** 2) + res_x2
    return t, gamma, m2, res2

  def cond(state):
    it, done = state[0], state[1]
    return (it < _MAX_ITER) & ~done

  def body(state):
    it, _, alpha, beta, _, _ = state
    t, gamma, m2, res2 = terms(alpha, beta)
    alpha = gamma / (m2 + _EPS)
    beta = (n - gamma) / (res2 + _EPS)
    done = jnp.abs(alpha / beta - t) / t <= _TOL
    return it + 1, done, alpha, beta, m2, res2

  one = jnp.ones((), sigma.dtype)
  _, _, alpha, beta, m2, res2 = jax.lax.while_loop(
      cond, body, (0, jnp.asarray(False), one, one, one, one))
  # As thuml: the evidence uses the last alpha, beta with the m2 and res2 of
  # the step that produced them; log|A| sums over the nonzero singular values
  # only (thuml and google alike), so scores match theirs.
  logdet = jnp.sum(jnp.where(valid, jnp.log(alpha + beta * sigma), 0.0))
  evidence = (d / 2.0 * jnp.log(alpha) + n / 2.0 * jnp.log(beta) - 0.5 * logdet
              - beta / 2.0 * res2 - alpha / 2.0 * m2 - n / 2.0 * jnp.log(2 * jnp.pi))
  return evidence / n


def logme_core(features: jax.Array, labels: jax.Array, *, num_classes: int
               ) -> jax.Array:
  """LogME for one source; pure and jittable (see :func:`logme`)."""
  f = _common.as_float(features)
  n, d = f.shape
  # One decomposition for all classes: eigh of the smaller Gram matrix, as
  # thuml's truncated_svd when n > d (float64 absorbs the squared condition
  # number; an SVD of f is several times slower on CPU).
  u, s, valid = _common.gram_svd(f)                  # u [n, k], k = min(n, d)
  valid = valid & (s > _SV_FLOOR)
  sigma = jnp.where(valid, s**2, 0.0)
  y = jax.nn.one_hot(labels, num_classes, dtype=f.dtype)   # [n, C]
  x = jnp.where(valid[:, None], u.T @ y, 0.0)             # [k, C]
  evid = jax.vmap(_class_evidence, in_axes=(1, None, None, 0, None, None))(
      x**2, sigma, valid, jnp.sum(y**2, 0), n, d)
  return evid.mean()


_logme_jit = jax.jit(logme_core, static_argnames="num_classes")


def logme(features: Any, labels: Any, *, num_classes: int | None = None):
  """Log Maximum Evidence for classification (fixed-point LogME).

  Follows thuml/LogME ``_fit_fixed_point`` (JMLR 2022, Alg. 3): alpha = beta
  = 1 to start, at most 11 iterations, stop when alpha / beta changes by at
  most 1e-3 relatively, +1e-5 on the denominators of the alpha and beta
  updates (TLlib's copy lacks it and divides by zero when n <= d and the fit is
  exact). Computed in float64 on the eager path.

  Args:
    features: `[n, d]` source features on the target images.
    labels: `[n]` target labels in 0..C-1.
    num_classes: C; required only under jit/vmap.

  Returns:
    Mean per-class log evidence / n; higher is better (NumPy float64 eagerly).
  """
  if _common.is_traced(features, labels):
    return logme_core(features, labels,
                      num_classes=_common.require_num_classes(num_classes, "logme"))
  f, y, c = _common.check_features(features, labels, "logme", num_classes=num_classes)
  return _common.run_eager(_logme_jit, f, y, num_classes=c)
