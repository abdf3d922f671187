"""Float64 NumPy/sklearn/scipy reference implementations of the metrics.

Written independently of the JAX code, directly from the papers' formulas and
the reference repositories' loops (one source at a time, per-class Python
loops, the reference's own linear-algebra routines: ``np.linalg.pinv``,
``np.linalg.svd``, ``np.linalg.matrix_rank``, ``scipy.linalg.eigh(Sb, Sw)``,
``sklearn.covariance.LedoitWolf``, ``sklearn.decomposition.PCA``,
``sklearn.mixture.GaussianMixture``). Tests compare the JAX metrics with these,
and ``benchmarks/metrics_speed.py`` times them against the JAX versions.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg


def leep_np(source_probs, labels):
  theta = np.asarray(source_probs, np.float64)
  y = np.asarray(labels)
  n = len(y)
  ct = int(y.max()) + 1
  joint = np.zeros((ct, theta.shape[1]))
  for c in range(ct):
    joint[c] = theta[y == c].sum(0) / n
  pz = joint.sum(0)
  with np.errstate(divide="ignore", invalid="ignore"):
    cond = np.where(pz > 0, joint / pz, 0.0)
  eep = np.array([theta[i] @ cond[y[i]] for i in range(n)])
  with np.errstate(divide="ignore"):
    return float(np.mean(np.where(eep > 0, np.log(eep), -np.log(ct))))


def nce_np(source_predictions, labels):
  z = np.asarray(source_predictions)
  y = np.asarray(labels)
  n = len(y)
  total = 0.0
  for zz in np.unique(z):
    pz = np.mean(z == zz)
    for yy in np.unique(y):
      pyz = np.sum((z == zz) & (y == yy)) / n
      if pyz > 0:
        total += pyz * np.log(pyz / pz)
  return float(total)


def _class_mean_rows(f, y):
  g = np.zeros_like(f)
  for c in np.unique(y):
    g[y == c] = f[y == c].mean(0)
  return g


def h_score_np(features, labels, rcond=None):
  f = np.asarray(features, np.float64)
  y = np.asarray(labels)
  d = f.shape[1]
  rcond = 10.0 * d * np.finfo(np.float64).eps if rcond is None else rcond
  cov_f = np.cov(f, rowvar=False)
  cov_g = np.cov(_class_mean_rows(f, y), rowvar=False)
  return float(np.trace(np.linalg.pinv(cov_f, rtol=rcond) @ cov_g))


def shrinkage_h_score_np(features, labels, rcond=None):
  """TLlib ``regularized_h_score`` with sklearn's LedoitWolf."""
  from sklearn.covariance import LedoitWolf
  f = np.asarray(features, np.float64)
  f = f - f.mean(0, keepdims=True)
  y = np.asarray(labels)
  d = f.shape[1]
  rcond = 10.0 * d * np.finfo(np.float64).eps if rcond is None else rcond
  lw = LedoitWolf(assume_centered=False).fit(f)
  alpha = lw.shrinkage_
  cov_g = np.cov(_class_mean_rows(f, y), rowvar=False)
  return float(np.trace(np.linalg.pinv(lw.covariance_, rtol=rcond) @ ((1 - alpha) * cov_g)))


def logme_np(features, labels):
  """thuml/LogME ``_fit_fixed_point`` (classification), per class."""
  f = np.asarray(features, np.float64)
  y = np.asarray(labels)
  n, d = f.shape
  u, s, _ = np.linalg.svd(f, full_matrices=False)
  keep = s > 1e-10
  u, s = u[:, keep], s[keep]
  sigma = s**2
  evidences = []
  for c in range(int(y.max()) + 1):
    yc = (y == c).astype(np.float64)
    x2 = (u.T @ yc) ** 2
    res_x2 = (yc**2).sum() - x2.sum()
    alpha, beta = 1.0, 1.0
    for _ in range(11):
      t = alpha / beta
      gamma = (sigma / (sigma + t)).sum()
      m2 = (sigma * x2 / ((t + sigma) ** 2)).sum()
      res2 = (x2 / ((1 + sigma / t) ** 2)).sum() + res_x2
      alpha = gamma / (m2 + 1e-5)
      beta = (n - gamma) / (res2 + 1e-5)
      if abs(alpha / beta - t) / t <= 1e-3:
        break
    evidence = (d / 2.0 * np.log(alpha) + n / 2.0 * np.log(beta)
                - 0.5 * np.sum(np.log(alpha + beta * sigma)) - beta / 2.0 * res2
                - alpha / 2.0 * m2 - n / 2.0 * np.log(2 * np.pi))
    evidences.append(evidence / n)
  return float(np.mean(evidences))


def nleep_np(features, labels, *, variance=0.8, components_per_class=5,
             init_indices=None, random_state=0, max_iter=100, tol=1e-3):
  """sklearn PCA(variance) + diagonal GaussianMixture + LEEP.

  With ``init_indices`` the mixture starts where the JAX version does (means
  at those PCA rows, equal weights, the data variance); otherwise sklearn's
  k-means initialisation with ``random_state``.
  """
  from sklearn.decomposition import PCA
  from sklearn.exceptions import ConvergenceWarning
  from sklearn.mixture import GaussianMixture
  f = np.asarray(features, np.float64)
  y = np.asarray(labels)
  z = PCA(n_components=variance, svd_solver="full").fit_transform(f)
  k = components_per_class * (int(y.max()) + 1)
  kw = {}
  if init_indices is not None:
    var = z.var(0) + 1e-6
    kw = dict(means_init=z[np.asarray(init_indices)], weights_init=np.full(k, 1.0 / k),
              precisions_init=np.tile(1.0 / var, (k, 1)))
  gmm = GaussianMixture(k, covariance_type="diag", max_iter=max_iter, tol=tol,
                        random_state=random_state, **kw)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    gmm.fit(z)
  return leep_np(gmm.predict_proba(z), y)


def gbc_np(features, labels, gaussian_type="diagonal", pca_dim=64):
  from sklearn.decomposition import PCA
  f = np.asarray(features, np.float64)
  y = np.asarray(labels)
  n, d = f.shape
  if d > pca_dim:
    f = PCA(n_components=min(pca_dim, n), svd_solver="full").fit_transform(f)
  classes = np.unique(y)
  stats = {}
  for c in classes:
    fc = f[y == c]
    var = np.maximum(fc.var(0), 1e-4)
    if gaussian_type == "spherical":
      var = np.full_like(var, var.mean())
    stats[c] = (fc.mean(0), var)
  total = 0.0
  for c1 in classes:
    for c2 in classes:
      if c1 == c2:
        continue
      (m1, v1), (m2, v2) = stats[c1], stats[c2]
      # Exact Bhattacharyya distance between Gaussians with diagonal covariance.
      s = (v1 + v2) / 2
      db = (np.sum((m1 - m2) ** 2 / s) / 8
            + 0.5 * (np.sum(np.log(s)) - 0.5 * np.sum(np.log(v1)) - 0.5 * np.sum(np.log(v2))))
      total += np.exp(-db)
  return float(-total)


def transrate_np(features, labels, eps=1e-4):
  """Long-Kai/TransRate: normalise, centre, ``pre_transrate`` + ``process_transrate_logs``."""
  z = np.asarray(features, np.float64)
  y = np.asarray(labels)
  z = z / np.linalg.norm(z, axis=1, keepdims=True)     # torch.nn.functional.normalize
  z = z - z.mean(0, keepdims=True)
  z = z / np.linalg.norm(z, axis=1, keepdims=True)     # pre_transrate(normalize=True)
  n, _ = z.shape
  zz = z.T @ z / n
  eig_z = np.linalg.svd(zz, compute_uv=False)
  rank_z = np.linalg.matrix_rank(zz)
  rz = np.sum(np.log(1 + np.abs(eig_z) / eps)) / rank_z
  rzc = 0.0
  for c in range(int(y.max()) + 1):
    zc = z[y == c]
    eig_c = np.linalg.svd(zc.T @ zc / len(zc), compute_uv=False)
    rzc += len(zc) / n * np.sum(np.log(1 + np.abs(eig_c) / eps)) / rank_z
  return float(rz / 2 - rzc / 2)


def _sfda_fit_proba(x, y, shrinkage):
  """TencentARC/SFDA ``SFDA.fit(...).predict_proba`` with ``scipy.linalg.eigh``."""
  classes = np.unique(y)
  priors = np.bincount(y) / len(y)
  means = np.stack([x[y == c].mean(0) for c in classes])
  sw = np.zeros((x.shape[1], x.shape[1]))
  for i, c in enumerate(classes):
    sw += priors[i] * np.cov(x[y == c].T, bias=1)
  d = sw.shape[0]

  def shrink(s):
    return (1 - shrinkage) * s + shrinkage * np.trace(s) / d * np.eye(d)

  st = shrink(np.cov(x.T, bias=1))
  sw_s = shrink(sw)
  evals, evecs = scipy.linalg.eigh(st - sw_s, sw_s)
  evecs = evecs[:, np.argsort(evals)[::-1]]
  coef = means @ evecs @ evecs.T
  intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
  scores = x @ coef.T + intercept
  scores = scores - scores.max(1, keepdims=True)
  p = np.exp(scores)
  return p / p.sum(1, keepdims=True), sw


def sfda_np(features, labels):
  x = np.array(features, np.float64)           # a copy: no in-place mutation
  y = np.asarray(labels)
  n = len(y)
  c = int(y.max()) + 1
  # Shrinkage from 3 power iterations on S_w (SFDA utils.iterative_A).
  priors = np.bincount(y) / n
  sw = sum(priors[k] * np.cov(x[y == k].T, bias=1) for k in range(c))
  v = sw.sum(1)
  for _ in range(3):
    t = sw @ v
    w = t / np.linalg.norm(t)
    t = sw @ w
    v = t / np.linalg.norm(t)
  shrinkage = max(np.exp(-5 * (v @ sw @ w)), 1e-10)
  prob, _ = _sfda_fit_proba(x, y, shrinkage)
  prob = np.exp(prob) / np.exp(prob).sum(1, keepdims=True)
  means = np.stack([x[y == k].mean(0) for k in range(c)])
  for k in range(c):
    idx = np.where(y == k)[0]
    outer = (means.sum(0) - means[k]) / (c - 1)
    p = prob[idx, k][:, None]
    x[idx] = p * x[idx] + (1 - p) * outer
  prob2, _ = _sfda_fit_proba(x, y, shrinkage)
  return float(prob2[np.arange(n), y].mean())


def knn_accuracy_np(train_features, train_labels, val_features, val_labels, k=5):
  from sklearn.neighbors import KNeighborsClassifier
  clf = KNeighborsClassifier(n_neighbors=k, algorithm="brute")
  clf.fit(np.asarray(train_features, np.float64), np.asarray(train_labels))
  return float(np.mean(clf.predict(np.asarray(val_features, np.float64))
                       == np.asarray(val_labels)))


def pactran_gauss_np(features, labels, lda_factor=1.0, maxiter=1000, seed=0):
  """google-research/pactran_metrics ``calculate_pac_gauss``, negated.

  scipy L-BFGS-B from the reference's random start, but with more iterations
  and a tight tolerance so the optimum is reached (the reference stops at 100).
  """
  import scipy.optimize
  import scipy.special
  x = np.array(features, np.float64)
  x = x - x.mean(0, keepdims=True)
  y = np.asarray(labels)
  k = int(y.max()) + 1
  onehot = np.eye(k)[y]
  n, d = x.shape
  kd = d * k
  lam = lda_factor * n

  def unpack(theta):
    theta = theta.reshape(d + 1, k)
    return theta[:d], theta[d:]

  def loss(theta):
    w, b = unpack(theta)
    log_q = scipy.special.log_softmax(x @ w + b, axis=-1)
    return -np.sum(onehot * log_q) / n + 0.5 * np.sum(w**2) / lam

  def grad(theta):
    w, b = unpack(theta)
    g = (scipy.special.softmax(x @ w + b, axis=-1) - onehot) / n
    return np.concatenate([x.T @ g + w / lam, g.sum(0, keepdims=True)]).ravel()

  rng = np.random.default_rng(seed)
  theta0 = np.concatenate([rng.normal(size=(d, k)) * 0.03, np.zeros((1, k))]).ravel()
  res = scipy.optimize.minimize(loss, theta0, method="L-BFGS-B", jac=grad,
                                options=dict(maxiter=maxiter, gtol=1e-12, ftol=1e-15))
  w, b = unpack(res.x)
  p = scipy.special.softmax(x @ w + b, axis=-1)
  g2 = p - p**2
  h = np.sum(x.T**2 @ g2 + 1.0 / lam) + np.sum(g2)
  sigma2_inv = h * lam / kd + 1e-10
  s2 = {10.0: 1000.0, 1.0: 100.0, 0.1: 10.0}[float(lda_factor)] / d
  return float(-(loss(res.x) + 0.5 * kd / lam * s2 * np.log(sigma2_inv)))


REFERENCES = {
    "leep": leep_np, "nce": nce_np, "h_score": h_score_np,
    "shrinkage_h_score": shrinkage_h_score_np, "logme": logme_np,
    "nleep": nleep_np, "gbc": gbc_np, "transrate": transrate_np, "sfda": sfda_np,
    "knn_accuracy": knn_accuracy_np, "pactran_gauss": pactran_gauss_np,
}
