"""transferjax: which pre-trained source CNN should I fine-tune from?

Sources are ranked zero-shot by the conditional mutual information
``I(Y_v ; N_i^{m-1}(X_v) | N_t(X_v))`` of Afridi, Ross & Shapiro (Pattern
Recognition 73, 2018). Subpackages:

  data        data sets, target splits, source tasks
  models      the small source/target CNNs
  train       the vmapped, sharded, resumable zoo trainer
  estimators  CMI / MI estimators (k-NN, binned)
  scoring     target net, features, ranking
  transfer    fine-tuning ground truth
  metrics     modern transferability metrics
  evaluation  rank statistics, reports and figures
"""

__version__ = "0.1.0"
