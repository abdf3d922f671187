"""H-score (Bao et al., ICIP 2019) and its Ledoit-Wolf shrinkage version.

H(f) = tr(cov(f)^+ cov(E[f | y])): how much of the feature covariance is
between-class. Higher is better; 0 for features independent of the labels
(in expectation), at most C - 1 (the rank of the between-class covariance).

The trace is of the *matrix product* (as TLlib); google's stable_transfer
multiplies element-wise, which keeps only sum_i [pinv]_ii [cov_g]_ii.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from transferjax.errors import EstimatorError
from transferjax.metrics import _common


def _between_cov(x, labels, num_classes):
  """cov(g) with g_i = E[f | y_i], ddof=1 (as np.cov on the class-mean matrix)."""
  n = x.shape[0]
  _, counts, means = _common.class_stats(x, labels, num_classes)
  dm = means - x.mean(0)                              # class mean - grand mean
  return (dm.T * counts) @ dm / (n - 1)


def h_score_core(features: jax.Array, labels: jax.Array, *, num_classes: int,
                 rcond: float | None = None) -> jax.Array:
  """H-score for one source; pure and jittable (see :func:`h_score`)."""
  x = _common.as_float(features)
  n = x.shape[0]
  xc = x - x.mean(0)
  cov_f = xc.T @ xc / (n - 1)
  return _common.sym_pinv_trace(cov_f, _between_cov(x, labels, num_classes), rcond)


_h_jit = jax.jit(h_score_core, static_argnames=("num_classes", "rcond"))


def h_score(features: Any, labels: Any, *, rcond: float | None = None,
            num_classes: int | None = None):
  """H-score: tr(pinv(cov(f)) @ cov(E[f | y])).

  Args:
    features: `[n, d]` source features on the target images.
    labels: `[n]` target labels in 0..C-1.
    rcond: relative cutoff of the pseudo-inverse; None means 10 * d * eps
      (TLlib uses 1e-15, which inverts round-off when n <= d).
    num_classes: C; required only under jit/vmap.

  Returns:
    Scalar score, higher is better (NumPy float64 when called eagerly).
  """
  if _common.is_traced(features, labels):
    return h_score_core(features, labels, rcond=rcond,
                        num_classes=_common.require_num_classes(num_classes, "h_score"))
  f, y, c = _common.check_features(features, labels, "h_score", num_classes=num_classes)
  _check_n(f, "h_score")
  return _common.run_eager(_h_jit, f, y, num_classes=c, rcond=rcond)


def _check_n(f, name):
  if f.shape[-2] < 3:
    raise EstimatorError(f"{name}: needs at least 3 images to estimate a "
                         f"covariance, got n={f.shape[-2]}.")


def ledoit_wolf(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Ledoit-Wolf shrunk covariance of `x` `[n, d]`, as sklearn computes it.

  Same formulas as ``sklearn.covariance.ledoit_wolf_shrinkage`` (with
  ``assume_centered=False``): the empirical covariance is the biased one
  (divided by n) and the target is (tr S / d) I.

  Returns:
    (shrunk covariance `[d, d]`, shrinkage alpha in [0, 1]).
  """
  n, d = x.shape
  xc = x - x.mean(0)
  emp = xc.T @ xc / n
  mu = jnp.trace(emp) / d
  # beta_ = sum(X2^T X2) = sum_i ||x_i||^4; delta_ = ||X^T X||_F^2 / n^2.
  beta_ = jnp.sum(jnp.sum(xc**2, 1) ** 2)
  delta_ = jnp.sum(emp**2)
  beta = (beta_ / n - delta_) / (d * n)
  delta = (delta_ - 2.0 * mu * jnp.trace(emp) + d * mu**2) / d
  beta = jnp.minimum(beta, delta)
  # sklearn returns 0 when beta == 0 (and for d == 1, where delta == 0 too).
  alpha = jnp.where(delta > 0, beta / jnp.where(delta > 0, delta, 1.0), 0.0)
  if d == 1:
    alpha = jnp.zeros_like(alpha)
  cov = (1.0 - alpha) * emp + alpha * mu * jnp.eye(d, dtype=x.dtype)
  return cov, alpha


def shrinkage_h_score_core(features: jax.Array, labels: jax.Array, *,
                           num_classes: int, rcond: float | None = None
                           ) -> jax.Array:
  """Shrinkage H-score for one source; pure and jittable."""
  x = _common.as_float(features)
  cov, alpha = ledoit_wolf(x)
  cov_g = (1.0 - alpha) * _between_cov(x, labels, num_classes)
  return _common.sym_pinv_trace(cov, cov_g, rcond)


_sh_jit = jax.jit(shrinkage_h_score_core, static_argnames=("num_classes", "rcond"))


def shrinkage_h_score(features: Any, labels: Any, *, rcond: float | None = None,
                      num_classes: int | None = None):
  """H-score with a Ledoit-Wolf covariance (Ibrahim et al., arXiv 2110.06893).

  H_alpha = tr(Sigma_alpha^-1 (1 - alpha) cov(E[f | y])), Sigma_alpha the
  Ledoit-Wolf estimate with shrinkage alpha, as TLlib's
  ``regularized_h_score`` (biased Sigma, ddof=1 between-class covariance).
  Stable when d is close to or above n, which plain H-score is not.

  Args:
    features: `[n, d]` source features on the target images.
    labels: `[n]` target labels in 0..C-1.
    rcond: relative pseudo-inverse cutoff (None: 10 * d * eps).
    num_classes: C; required only under jit/vmap.

  Returns:
    Scalar score, higher is better (NumPy float64 when called eagerly).
  """
  if _common.is_traced(features, labels):
    return shrinkage_h_score_core(
        features, labels, rcond=rcond,
        num_classes=_common.require_num_classes(num_classes, "shrinkage_h_score"))
  f, y, c = _common.check_features(features, labels, "shrinkage_h_score",
                                   num_classes=num_classes)
  _check_n(f, "shrinkage_h_score")
  return _common.run_eager(_sh_jit, f, y, num_classes=c, rcond=rcond)
