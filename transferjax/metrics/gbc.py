"""Gaussian Bhattacharyya Coefficient (Pandy et al., CVPR 2022).

Each target class is modelled as a Gaussian in the (PCA-reduced) feature
space; GBC = -sum_{c != c'} exp(-D_B(c, c')), the negated total pairwise
Bhattacharyya coefficient. Range [-C(C-1), 0]; higher (less overlap) is better.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from transferjax.errors import EstimatorError
from transferjax.metrics import _common

_VAR_FLOOR = 1e-4   # google's floor for constant features.
GAUSSIAN_TYPES = ("diagonal", "spherical")


def bhattacharyya_diag(mu1, mu2, var1, var2):
  """D_B between N(mu1, diag var1) and N(mu2, diag var2) (exact)."""
  avg = (var1 + var2) / 2
  first = jnp.sum((mu1 - mu2) ** 2 / avg) / 8
  second = jnp.sum(jnp.log(avg)) - 0.5 * jnp.sum(jnp.log(var1)) - 0.5 * jnp.sum(jnp.log(var2))
  return first + 0.5 * second


def gbc_core(features: jax.Array, labels: jax.Array, *, num_classes: int,
             gaussian_type: str = "diagonal", pca_dim: int = 64) -> jax.Array:
  """GBC for one source; pure and jittable (see :func:`gbc`)."""
  x = _common.as_float(features)
  n, d = x.shape
  if d > pca_dim:
    x, _ = _common.pca_project(x, min(pca_dim, n))
  onehot, counts, means = _common.class_stats(x, labels, num_classes)
  # Per-class variance with ddof=0 (tf.math.reduce_variance), floored.
  resid = x - means[labels]
  var = onehot.T @ (resid * resid) / jnp.maximum(counts, 1)[:, None]
  var = jnp.maximum(var, _VAR_FLOOR)                             # [C, d']
  if gaussian_type == "spherical":
    # N(mu, s^2 I) with s^2 the mean variance; every dimension then carries
    # the same s^2, so the diagonal formula gives the exact spherical D_B
    # (google's spherical branch drops the factor d in the log-det term).
    var = jnp.broadcast_to(var.mean(1, keepdims=True), var.shape)
  db = jax.vmap(jax.vmap(bhattacharyya_diag, (None, 0, None, 0)), (0, None, 0, None))(
      means, means, var, var)                                  # [C, C]
  off = 1.0 - jnp.eye(num_classes, dtype=x.dtype)
  return -jnp.sum(off * jnp.exp(-db))


_gbc_jit = jax.jit(gbc_core, static_argnames=("num_classes", "gaussian_type", "pca_dim"))


def gbc(features: Any, labels: Any, *, gaussian_type: str = "diagonal",
        pca_dim: int = 64, num_classes: int | None = None):
  """Gaussian Bhattacharyya Coefficient.

  Features with more than ``pca_dim`` dimensions are first projected on their
  top ``min(pca_dim, n)`` principal components (google's setting). Each class
  gets a diagonal (or spherical) Gaussian with ddof=0 variances floored at
  1e-4; D_B = 1/8 dmu^T S^-1 dmu + 1/2 ln(det S / sqrt(det S1 det S2)),
  S = (S1 + S2) / 2.

  Args:
    features: `[n, d]` source features on the target images.
    labels: `[n]` target labels in 0..C-1.
    gaussian_type: "diagonal" or "spherical".
    pca_dim: PCA target dimension when d > pca_dim.
    num_classes: C; required only under jit/vmap.

  Returns:
    Score in [-C(C-1), 0]; higher is better (NumPy float64 when eager).
  """
  if gaussian_type not in GAUSSIAN_TYPES:
    raise EstimatorError(f"gbc: gaussian_type must be one of {GAUSSIAN_TYPES}, got "
                         f"{gaussian_type!r}.")
  if _common.is_traced(features, labels):
    return gbc_core(features, labels, gaussian_type=gaussian_type, pca_dim=pca_dim,
                    num_classes=_common.require_num_classes(num_classes, "gbc"))
  f, y, c = _common.check_features(features, labels, "gbc", num_classes=num_classes)
  return _common.run_eager(_gbc_jit, f, y, num_classes=c, gaussian_type=gaussian_type,
                           pca_dim=pca_dim)
