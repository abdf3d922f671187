"""Gaussian parametric baseline for I(Y; F | T) (gcmi-style sanity check)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from transferjax.errors import EstimatorError
from transferjax.estimators import _checks


@functools.partial(jax.jit, static_argnames=("n_y",))
def _gauss_mi(y, x, n_y, ridge):
  """Gaussian-class I(Y; X) = 1/2 log|S| - sum_c p_c 1/2 log|S_c| (nats)."""
  n, d = x.shape
  eye = ridge * jnp.eye(d)
  x = x - x.mean(0)
  cov = x.T @ x / n + eye
  onehot = jax.nn.one_hot(y, n_y)
  cnt = onehot.sum(0)
  mu = (onehot.T @ x) / cnt[:, None]
  xc = x - mu[y]
  covs = jnp.einsum("nc,ni,nj->cij", onehot, xc, xc) / cnt[:, None, None]
  logdet_c = jnp.linalg.slogdet(covs + eye)[1]
  return 0.5 * jnp.linalg.slogdet(cov)[1] - 0.5 * jnp.sum(cnt / n * logdet_c)


def cmi_gaussian(y, f, t=None, *, ridge: float = 1e-6):
  """Parametric baseline: Gaussian class-conditional I(Y; F | T) in nats.

  I_G(Y; X) = 1/2 log det Cov(X) - sum_c p_c 1/2 log det Cov(X | Y=c), and
  I_G(Y; F | T) = I_G(Y; [F, T]) - I_G(Y; T). With Gaussian classes the
  second term is exact and the first over-estimates H(X) (a mixture is not
  Gaussian), so I_G(Y; X) >= I(Y; X); it is a cheap sanity baseline, not an
  unbiased estimator. Columns are standardized; each class needs > d members.

  Args:
    y: class labels `[n]`; f: `[n, dF]`; t: `[n, dT]` or None.
    ridge: added to every covariance diagonal (standardized units).

  Returns:
    float32 scalar.
  """
  y, f, t, _ = _checks.check_inputs(y, f, t, knn=False)
  _, yc, counts = np.unique(y, return_inverse=True, return_counts=True)
  d = f.shape[1] + (0 if t is None else t.shape[1])
  if counts.min() <= d:
    raise EstimatorError(
        f"cmi_gaussian needs more than d={d} samples per class (smallest has "
        f"{counts.min()}); reduce the dimension (reduce_dim) first.")
  n_y = int(yc.max()) + 1
  std = lambda a: (a - a.mean(0)) / np.where(a.std(0) > 0, a.std(0), 1.0)
  f = jnp.asarray(std(f))
  yc = jnp.asarray(yc, jnp.int32)
  if t is None:
    return _gauss_mi(yc, f, n_y, ridge)
  t = jnp.asarray(std(t))
  return (_gauss_mi(yc, jnp.concatenate([f, t], 1), n_y, ridge)
          - _gauss_mi(yc, t, n_y, ridge))
