"""Estimators of I(Y; F | T) for source ranking (pure JAX, results in nats).

k-NN (class-aware Frenzel-Pompe, Ross), binned plug-in with Miller-Madow,
entropies for the bound gamma_max = H(Y | T), a permutation null, a Gaussian
baseline and PCA to a common feature dimension. See docs/notes/estimators.md.
"""
from transferjax.estimators.binned import cmi_binned
from transferjax.estimators.binned import cmi_binned_many
from transferjax.estimators.binned import cmi_plugin_codes
from transferjax.estimators.binned import conditional_entropy_y_given_t
from transferjax.estimators.binned import entropy_plugin
from transferjax.estimators.binned import reduce_dim
from transferjax.estimators.binned import t_codes
from transferjax.estimators.gaussian import cmi_gaussian
from transferjax.estimators.knn import cmi_fp
from transferjax.estimators.knn import cmi_knn
from transferjax.estimators.knn import cmi_knn_chain
from transferjax.estimators.knn import cmi_knn_many
from transferjax.estimators.knn import mi_knn
from transferjax.estimators.knn import scale_blocks
from transferjax.estimators.null import null_cmi
from transferjax.estimators.null import permute_within_t_bins

__all__ = [
    "cmi_binned", "cmi_binned_many", "cmi_plugin_codes",
    "conditional_entropy_y_given_t", "entropy_plugin", "reduce_dim",
    "t_codes", "cmi_gaussian", "cmi_fp", "cmi_knn", "cmi_knn_chain",
    "cmi_knn_many", "mi_knn", "null_cmi", "permute_within_t_bins",
    "scale_blocks",
]
