"""Baselines from the paper: the Ammar et al. (2014) RBM similarity (``rbm``)."""
