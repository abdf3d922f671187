"""Modern transferability metrics, in JAX, all higher-is-better.

Every metric is a plain function on arrays with its paper's argument order:

  leep(source_probs [n, C_s], labels)            Nguyen et al., ICML 2020
  nce(source_predictions [n], labels)            Tran et al., ICCV 2019
  h_score(features [n, d], labels)               Bao et al., ICIP 2019
  shrinkage_h_score(features, labels)            Ibrahim et al., 2021
  logme(features, labels)                        You et al., ICML 2021 / JMLR 2022
  nleep(features, labels, key)                   Li et al., CVPR 2021
  gbc(features, labels, gaussian_type=...)       Pandy et al., CVPR 2022
  transrate(features, labels, eps=1e-4)          Huang et al., ICML 2022
  sfda(features, labels)                         Shao et al., ECCV 2022
  pactran_gauss(features, labels)                Ding et al., ECCV 2022 (negated)

Modules, one per metric and named after it: source_labels (LEEP, NCE, NLEEP),
hscore (H-score, shrinkage H-score), logme, gbc, transrate, sfda, pactran; and
simple_baselines, registry, reference (float64 NumPy references for tests and
benchmarks). The package's names ``gbc``, ``logme``, ``transrate`` and ``sfda``
are the functions: import a module's other names from its full path
(``from transferjax.metrics.gbc import gbc_core``).

And baselines ``knn_accuracy``, ``linear_probe``, ``loo_prior``. Eager calls
check their inputs (raising EstimatorError) and compute in float64; the same
functions are jittable/vmappable when given ``num_classes``.
``score_sources(name, stacked_inputs, labels)`` scores q sources in one jit.
"""
from transferjax.metrics.gbc import gbc
from transferjax.metrics.logme import logme
from transferjax.metrics.sfda import sfda
from transferjax.metrics.transrate import transrate
from transferjax.metrics.hscore import h_score, shrinkage_h_score
from transferjax.metrics.pactran import pactran_gauss
from transferjax.metrics.registry import METRICS, MetricSpec, score_sources
from transferjax.metrics.simple_baselines import knn_accuracy, linear_probe, loo_prior
from transferjax.metrics.source_labels import leep, nce, nleep

__all__ = [
    "METRICS", "MetricSpec", "gbc", "h_score", "knn_accuracy", "leep",
    "linear_probe", "logme", "loo_prior", "nce", "nleep", "pactran_gauss", "score_sources",
    "sfda", "shrinkage_h_score", "transrate",
]
