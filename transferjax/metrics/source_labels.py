"""LEEP, NCE and NLEEP: scores built on a source "label" distribution.

* LEEP (Nguyen et al., ICML 2020): the source model's softmax over its own
  classes, theta(x) `[n, C_s]`, is turned into a classifier of the target label
  through the empirical conditional P(y | z); LEEP is that classifier's mean
  log-likelihood. Range (-inf, 0]; about -log C_t when uninformative.
* NCE (Tran et al., ICCV 2019): -H(Y | Z) with Z the source argmax.
* NLEEP (Li et al., CVPR 2021): LEEP with theta replaced by the posteriors of
  a Gaussian mixture fitted to (PCA-reduced) source features.

All three are higher-is-better in their papers' sign convention.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from transferjax.errors import EstimatorError
from transferjax.metrics import _common


# ----------------------------------------------------------------------------
# LEEP
# ----------------------------------------------------------------------------


def leep_core(source_probs: jax.Array, labels: jax.Array, *, num_classes: int
              ) -> jax.Array:
  """LEEP for one source; pure and jittable (see :func:`leep`)."""
  theta = _common.as_float(source_probs)
  n = theta.shape[0]
  onehot = jax.nn.one_hot(labels, num_classes, dtype=theta.dtype)
  joint = onehot.T @ theta / n                       # P(y, z) [C_t, C_s]
  pz = joint.sum(0)                                  # P(z) [C_s]
  has_z = pz > 0
  cond = jnp.where(has_z, joint / jnp.where(has_z, pz, 1.0), 0.0)  # P(y | z)
  eep = jnp.sum(theta * cond[labels], axis=1)        # sum_z theta_z P(y_i | z)
  # As google's stable_transfer: a zero expected prediction (possible only when
  # theta puts all its mass on classes no sample of y_i touches) counts as a
  # uniform guess, -log C_t, rather than -inf.
  safe = eep > 0
  logs = jnp.where(safe, jnp.log(jnp.where(safe, eep, 1.0)), -jnp.log(num_classes))
  return logs.mean()


_leep_jit = jax.jit(leep_core, static_argnames="num_classes")


def leep(source_probs: Any, labels: Any, *, num_classes: int | None = None):
  """Log Expected Empirical Prediction (Nguyen et al., ICML 2020).

  LEEP = (1/n) sum_i log sum_z P(y_i | z) theta_z(x_i), with
  P(y, z) = (1/n) sum_i theta_z(x_i) 1[y_i = y]. Higher is better; 0 for a
  source whose classes determine the target label, about -log C_t for an
  uninformative one. A zero expected prediction is scored -log C_t (google's
  guard) instead of -inf.

  Args:
    source_probs: `[n, C_s]` source softmax outputs on the target images.
    labels: `[n]` target labels in 0..C_t-1.
    num_classes: C_t; required only under jit/vmap.

  Returns:
    Scalar score (NumPy float64 when called eagerly).
  """
  if _common.is_traced(source_probs, labels):
    return leep_core(source_probs, labels,
                     num_classes=_common.require_num_classes(num_classes, "leep"))
  p, y, c = _common.check_probs(source_probs, labels, "leep", num_classes=num_classes)
  return _common.run_eager(_leep_jit, p, y, num_classes=c)


# ----------------------------------------------------------------------------
# NCE
# ----------------------------------------------------------------------------


def nce_core(source_predictions: jax.Array, labels: jax.Array, *, num_classes: int,
             num_source_classes: int) -> jax.Array:
  """NCE for one source; pure and jittable (see :func:`nce`)."""
  dtype = jnp.result_type(float)
  n = source_predictions.shape[0]
  oy = jax.nn.one_hot(labels, num_classes, dtype=dtype)
  oz = jax.nn.one_hot(source_predictions, num_source_classes, dtype=dtype)
  joint = oy.T @ oz / n                              # P(y, z)
  pz = joint.sum(0, keepdims=True)
  nz = joint > 0                                     # 0 log 0 = 0
  ratio = jnp.where(nz, joint / jnp.where(nz, pz, 1.0), 1.0)
  return jnp.sum(jnp.where(nz, joint * jnp.log(ratio), 0.0))


_nce_jit = jax.jit(nce_core, static_argnames=("num_classes", "num_source_classes"))


def nce(source_predictions: Any, labels: Any, *, num_classes: int | None = None,
        num_source_classes: int | None = None):
  """Negative Conditional Entropy (Tran et al., ICCV 2019).

  NCE = -H(Y | Z) = sum_{y,z} P(y, z) log P(y | z), with Z the source model's
  argmax label on each target image and P the empirical joint. Higher is
  better; 0 when Z determines Y, -H(Y) when Z is independent of Y.

  Args:
    source_predictions: `[n]` integer source-class predictions.
    labels: `[n]` target labels in 0..C_t-1.
    num_classes: C_t; required only under jit/vmap.
    num_source_classes: C_s; required only under jit/vmap (any value above the
      largest prediction gives the same score).

  Returns:
    Scalar score (NumPy float64 when called eagerly).
  """
  if _common.is_traced(source_predictions, labels):
    return nce_core(
        source_predictions, labels,
        num_classes=_common.require_num_classes(num_classes, "nce"),
        num_source_classes=_common.require_num_classes(num_source_classes, "nce"))
  z, y, c, cs = _common.check_predictions(source_predictions, labels, "nce",
                                          num_classes=num_classes)
  if num_source_classes is not None:
    if num_source_classes < cs:
      raise EstimatorError(f"nce: num_source_classes={num_source_classes} but "
                           f"predictions go up to {cs - 1}.")
    cs = int(num_source_classes)
  return _common.run_eager(_nce_jit, z, y, num_classes=c, num_source_classes=cs)


# ----------------------------------------------------------------------------
# NLEEP: PCA + a diagonal Gaussian mixture fitted by EM, in JAX.
# ----------------------------------------------------------------------------

_REG_COVAR = 1e-6  # sklearn GaussianMixture's default variance floor.


def _gmm_log_resp(x, weights, means, variances):
  """E-step: (mean log-likelihood, log responsibilities `[n, K]`)."""
  # log N(x | mu_k, diag v_k) = -1/2 sum_d [log 2 pi v + (x - mu)^2 / v].
  prec = 1.0 / variances                                       # [K, d]
  quad = (x**2) @ prec.T - 2.0 * x @ (means * prec).T + jnp.sum(means**2 * prec, 1)
  logdet = jnp.sum(jnp.log(variances), 1)
  d = x.shape[1]
  log_prob = -0.5 * (d * jnp.log(2 * jnp.pi) + logdet + quad) + jnp.log(weights)
  log_norm = jax.nn.logsumexp(log_prob, axis=1)
  return log_norm.mean(), log_prob - log_norm[:, None]


def _gmm_m_step(x, log_resp):
  """M-step with sklearn's diagonal-covariance formulas (``_estimate_gaussian_parameters``)."""
  resp = jnp.exp(log_resp)
  nk = resp.sum(0) + 10 * jnp.finfo(x.dtype).eps
  means = resp.T @ x / nk[:, None]
  avg_x2 = resp.T @ (x * x) / nk[:, None]
  variances = avg_x2 - 2 * means * (resp.T @ x / nk[:, None]) + means**2 + _REG_COVAR
  return nk / nk.sum(), means, variances


def gmm_posteriors(x: jax.Array, init_means: jax.Array, *, max_iter: int = 100,
                   tol: float = 1e-3) -> jax.Array:
  """Fits a diagonal Gaussian mixture by EM and returns its posteriors.

  The loop follows sklearn ``GaussianMixture(covariance_type="diag")`` step for
  step (E-step, M-step, stop when the mean log-likelihood moves less than
  ``tol``), so with the same initial parameters it gives the same posteriors.
  Initial parameters: the given means, equal weights, and every component's
  variance set to the data's per-dimension variance (+1e-6).

  Args:
    x: `[n, d]` data.
    init_means: `[K, d]` initial component means.
    max_iter: maximum EM iterations.
    tol: convergence threshold on the change of the mean log-likelihood.

  Returns:
    Posteriors `[n, K]` of the fitted mixture.
  """
  k = init_means.shape[0]
  var0 = jnp.broadcast_to(x.var(0) + _REG_COVAR, init_means.shape)
  w0 = jnp.full((k,), 1.0 / k, x.dtype)

  def cond(state):
    _, it, done, _ = state
    return (it < max_iter) & ~done

  def body(state):
    params, it, _, prev = state
    lb, log_resp = _gmm_log_resp(x, *params)
    params = _gmm_m_step(x, log_resp)
    return params, it + 1, jnp.abs(lb - prev) < tol, lb

  init = ((w0, init_means, var0), jnp.asarray(0), jnp.asarray(False),
          jnp.asarray(-jnp.inf, x.dtype))
  params, _, _, _ = jax.lax.while_loop(cond, body, init)
  return jnp.exp(_gmm_log_resp(x, *params)[1])


def nleep_init_indices(key: jax.Array, n: int, num_components: int) -> jax.Array:
  """The distinct sample indices whose (PCA) features seed the GMM means."""
  return jax.random.choice(key, n, (num_components,), replace=False)


def pca_variance_mask(ratio: jax.Array, variance: float) -> jax.Array:
  """Mask of the components sklearn ``PCA(n_components=variance)`` keeps."""
  # sklearn: k = searchsorted(cumsum(ratio), variance, side="right") + 1.
  k = jnp.searchsorted(jnp.cumsum(ratio), variance, side="right") + 1
  return jnp.arange(ratio.shape[0]) < k


def nleep_core(features: jax.Array, labels: jax.Array, key: jax.Array, *,
               num_classes: int, variance: float = 0.8,
               components_per_class: int = 5, max_iter: int = 100,
               tol: float = 1e-3) -> jax.Array:
  """NLEEP for one source; pure and jittable (see :func:`nleep`)."""
  x = _common.as_float(features)
  n, d = x.shape
  z, ratio = _common.pca_project(x, min(n, d))
  # The kept dimension count depends on the data, but shapes must be static:
  # zero the dropped PCA coordinates instead. In a diagonal GMM a coordinate
  # that is 0 for every sample gets mean 0 and variance 1e-6 in every
  # component, adding the same constant to every component's log-density, so
  # posteriors are exactly those of the truncated data.
  z = z * pca_variance_mask(ratio, variance)
  k = components_per_class * num_classes
  init_means = z[nleep_init_indices(key, n, k)]
  post = gmm_posteriors(z, init_means, max_iter=max_iter, tol=tol)
  return leep_core(post, labels, num_classes=num_classes)


_nleep_jit = jax.jit(nleep_core, static_argnames=(
    "num_classes", "variance", "components_per_class", "max_iter", "tol"))


def nleep(features: Any, labels: Any, key: jax.Array, *, variance: float = 0.8,
          components_per_class: int = 5, num_classes: int | None = None,
          max_iter: int = 100, tol: float = 1e-3):
  """NLEEP (Li et al., "Ranking Neural Checkpoints", CVPR 2021).

  Features are reduced by PCA to the fewest components explaining ``variance``
  of the variance; a Gaussian mixture with ``components_per_class * C_t``
  components is fitted to them; LEEP is computed with the mixture posteriors in
  place of the source softmax. Higher is better, <= 0.

  Differences from the references, on purpose: the mixture is a pure-JAX EM
  with **diagonal** covariances (google's stable_transfer uses sklearn's full
  covariances with k-means init), so it is jittable and vmappable over sources;
  it is seeded by ``key`` (means start at ``K`` distinct random samples,
  variances at the data variance, weights equal), so a score is reproducible.
  The log is kept (the SFDA/ETran copies drop it).

  Args:
    features: `[n, d]` source features on the target images.
    labels: `[n]` target labels in 0..C_t-1.
    key: PRNG key for the mixture initialisation.
    variance: fraction of PCA variance kept.
    components_per_class: mixture components per target class (5 in the paper).
    num_classes: C_t; required only under jit/vmap.
    max_iter: maximum EM iterations.
    tol: EM stopping threshold on the mean log-likelihood.

  Returns:
    Scalar score (NumPy float64 when called eagerly).
  """
  if not 0.0 < variance <= 1.0:
    raise EstimatorError(f"nleep: variance must be in (0, 1], got {variance}.")
  if _common.is_traced(features, labels, key):
    return nleep_core(features, labels, key,
                      num_classes=_common.require_num_classes(num_classes, "nleep"),
                      variance=variance, components_per_class=components_per_class,
                      max_iter=max_iter, tol=tol)
  f, y, c = _common.check_features(features, labels, "nleep", num_classes=num_classes)
  check_nleep_size(f.shape[-2], c, components_per_class)
  return _common.run_eager(_nleep_jit, f, y, key, num_classes=c, variance=variance,
                           components_per_class=components_per_class,
                           max_iter=max_iter, tol=tol)


def check_nleep_size(n: int, c: int, components_per_class: int) -> None:
  if n < components_per_class * c:
    raise EstimatorError(
        f"nleep: {components_per_class * c} mixture components "
        f"({components_per_class} per class x {c} classes) need at least as "
        f"many images, got n={n}; lower components_per_class or score on more "
        f"images.")
