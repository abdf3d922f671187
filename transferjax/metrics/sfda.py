"""SFDA: Self-challenging Fisher Discriminant Analysis (Shao et al., ECCV 2022).

As TencentARC/SFDA ``SFDA_Score``: (1) a regularised Fisher discriminant gives
p(y | x); (2) ConfMix moves each sample towards the mean of the *other* classes
in proportion to how unsure the first model is of its true class; (3) a second
discriminant with the same shrinkage is fitted on the mixed features and the
score is the mean probability of the true class (no log, as the paper). Higher
is better, in (0, 1].

Written without the reference's in-place mutation of the caller's features.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from transferjax.metrics import _common


def _power_lambda_max(a, iterations=3):
  """SFDA's ``iterative_A``: a few power steps from the row sums (deterministic)."""
  x = a.sum(1)
  y = x
  for _ in range(iterations):
    t = a @ x
    y = t / jnp.linalg.norm(t)
    t = a @ y
    x = t / jnp.linalg.norm(t)
  return x @ a @ y


def _within_cov(x, labels, means):
  """S_w = sum_c pi_c cov_c (biased) = (1/n) sum_i (x_i - mu_{y_i})(...)^T."""
  r = x - means[labels]
  return r.T @ r / x.shape[0]


def _shrink(s, alpha):
  d = s.shape[0]
  return (1.0 - alpha) * s + alpha * jnp.trace(s) / d * jnp.eye(d, dtype=s.dtype)


def _fda_proba(x, labels, num_classes, shrinkage):
  """Regularised-FDA posteriors `[n, C]` (SFDA class with given shrinkage)."""
  _, counts, means = _common.class_stats(x, labels, num_classes)
  priors = counts / x.shape[0]
  sw = _shrink(_within_cov(x, labels, means), shrinkage)
  # The reference solves eigh(S_b, S_w_shrunk) and keeps *all* d generalised
  # eigenvectors V, normalised so that V^T S_w V = I; then
  # coef = means V V^T = means S_w^-1, independent of S_b. A Cholesky solve
  # gives the same coefficients more cheaply and stably.
  coef = jsl.cho_solve(jsl.cho_factor(sw, lower=True), means.T).T     # [C, d]
  intercept = -0.5 * jnp.sum(means * coef, 1) + jnp.log(priors)
  return jax.nn.softmax(x @ coef.T + intercept, axis=1)


def sfda_core(features: jax.Array, labels: jax.Array, *, num_classes: int
              ) -> jax.Array:
  """SFDA for one source; pure and jittable (see :func:`sfda`)."""
  x = _common.as_float(features)
  n = x.shape[0]
  _, _, means = _common.class_stats(x, labels, num_classes)
  lam = _power_lambda_max(_within_cov(x, labels, means))
  shrinkage = jnp.maximum(jnp.exp(-5.0 * lam), 1e-10)
  prob = _fda_proba(x, labels, num_classes, shrinkage)
  prob = jax.nn.softmax(prob, axis=1)      # the reference's "softened" posteriors
  # Mean of the other classes' means, per class.
  others = (means.sum(0) - means) / (num_classes - 1)
  p_true = prob[jnp.arange(n), labels][:, None]
  mixed = p_true * x + (1.0 - p_true) * others[labels]
  prob2 = _fda_proba(mixed, labels, num_classes, shrinkage)
  return prob2[jnp.arange(n), labels].mean()


_sfda_jit = jax.jit(sfda_core, static_argnames="num_classes")


def sfda(features: Any, labels: Any, *, num_classes: int | None = None):
  """SFDA score (mean true-class probability after ConfMix).

  Shrinkage lambda = max(exp(-5 lambda_max(S_w)), 1e-10) with lambda_max from
  three power iterations, as the reference. Known limitation (TencentARC/SFDA
  #5): with n small and d large the score saturates near 1 for every source.

  Args:
    features: `[n, d]` source features on the target images.
    labels: `[n]` target labels in 0..C-1.
    num_classes: C; required only under jit/vmap.

  Returns:
    Scalar score in (0, 1], higher is better (NumPy float64 when eager).
  """
  if _common.is_traced(features, labels):
    return sfda_core(features, labels,
                     num_classes=_common.require_num_classes(num_classes, "sfda"))
  f, y, c = _common.check_features(features, labels, "sfda", num_classes=num_classes)
  return _common.run_eager(_sfda_jit, f, y, num_classes=c)
