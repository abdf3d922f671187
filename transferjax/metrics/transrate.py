"""TransRate (Huang et al., ICML 2022), as the official Long-Kai/TransRate code.

TrR = R(Z) - R(Z | Y), with the coding rate R(Z) = 1/2 sum_i log(1 + l_i / eps)
over the eigenvalues l_i of Z^T Z / n and R(Z | Y) = sum_c (n_c / n) R(Z_c).
Higher is better.

The official pipeline (``experiment_builder_get_eigens.py`` then
``transrate.pre_transrate`` and ``extract_result_utils.process_transrate_logs``
with its defaults) is followed step by step:

1. L2-normalise every feature row, centre the rows, L2-normalise again;
2. eigenvalues of Z^T Z / n and of Z_c^T Z_c / n_c per class (class blocks are
   not re-centred);
3. both rates are divided by rank(Z^T Z / n) (``normalize_opt="rank"``);
4. class rates are weighted by n_c / n (TLlib's copy uses 1/C and skips the
   normalisations; the two disagree on imbalanced targets).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from transferjax.metrics import _common


def _l2_rows(z):
  norm = jnp.linalg.norm(z, axis=1, keepdims=True)
  return z / jnp.where(norm > 0, norm, 1.0)


def _rate(eigs, eps):
  return jnp.sum(jnp.log1p(jnp.abs(eigs) / eps))


def transrate_core(features: jax.Array, labels: jax.Array, *, num_classes: int,
                   eps: float = 1e-4) -> jax.Array:
  """TransRate for one source; pure and jittable (see :func:`transrate`)."""
  z = _l2_rows(_common.as_float(features))
  z = _l2_rows(z - z.mean(0))
  n, d = z.shape
  onehot, counts, _ = _common.class_stats(z, labels, num_classes)
  eig_all = jnp.linalg.eigvalsh(z.T @ z / n)                         # [d]
  # np.linalg.matrix_rank's default tolerance: S.max() * max(M, N) * eps.
  s = jnp.abs(eig_all)
  rank = jnp.sum(s > s.max() * d * jnp.finfo(z.dtype).eps)
  # Per-class second moments [C, d, d] as one batched matmul over (one-hot * z).
  zz_c = jnp.einsum("ncd,ne->cde", onehot[:, :, None] * z[:, None, :], z)
  zz_c = zz_c / jnp.maximum(counts, 1)[:, None, None]
  eig_c = jnp.linalg.eigvalsh(zz_c)                                  # [C, d]
  r_z = _rate(eig_all, eps)
  r_zc = jax.vmap(_rate, (0, None))(eig_c, eps)
  return (r_z - jnp.sum(counts / n * r_zc)) / (2.0 * rank)


_transrate_jit = jax.jit(transrate_core, static_argnames=("num_classes", "eps"))


def transrate(features: Any, labels: Any, eps: float = 1e-4, *,
              num_classes: int | None = None):
  """TransRate: coding rate of the features minus their class-conditional rate.

  Args:
    features: `[n, d]` source features on the target images.
    labels: `[n]` target labels in 0..C-1.
    eps: the distortion (the code's ``eps``, the paper's eps^2).
    num_classes: C; required only under jit/vmap.

  Returns:
    Scalar score, higher is better (NumPy float64 when called eagerly).
  """
  if _common.is_traced(features, labels):
    return transrate_core(features, labels, eps=eps,
                          num_classes=_common.require_num_classes(num_classes, "transrate"))
  f, y, c = _common.check_features(features, labels, "transrate", num_classes=num_classes)
  return _common.run_eager(_transrate_jit, f, y, num_classes=c, eps=float(eps))
