"""The small source/target CNNs (``make_cnn``) and the padded-head helper."""
from transferjax.models.cnn import (ARCHS, COMPUTE_DTYPES, CONV_IMPLS,
                                    FEATURE_DIM, POOL_IMPLS, ArchSpec, SmallCNN,
                                    activation_floats_per_example, arch_spec,
                                    check_image_size, make_cnn, masked_logits,
                                    max_pool2)

__all__ = ["ARCHS", "COMPUTE_DTYPES", "CONV_IMPLS", "FEATURE_DIM", "POOL_IMPLS", "ArchSpec", "SmallCNN",
           "activation_floats_per_example", "arch_spec", "check_image_size",
           "make_cnn", "masked_logits", "max_pool2"]
