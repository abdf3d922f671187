"""Sources of any kind behind one interface: the zoo, Flax models, feature files.

``parse_sources("zoo:runs/zoo,flax:my_models:resnet,files:feats/")`` gives the
source groups ``experiments.rank --sources=...`` scores; ``score_streamed``
scores them a chunk at a time.
"""
from transferjax.sources.base import (Preprocess, SourceGroup, SourceInfo,
                                      check_outputs, prepare_images)
from transferjax.sources.files import FeatureFiles, write_feature_files
from transferjax.sources.flax_model import FlaxGroup, FlaxModel, load_flax_models
from transferjax.sources.spec import parse_sources
from transferjax.sources.stream import StreamConfig, StreamResult, score_streamed
from transferjax.sources.zoo import ZooGroup, zoo_flax_models

__all__ = ["FeatureFiles", "FlaxGroup", "FlaxModel", "Preprocess", "SourceGroup",
           "SourceInfo", "StreamConfig", "StreamResult", "ZooGroup",
           "check_outputs", "load_flax_models", "parse_sources", "prepare_images",
           "score_streamed", "write_feature_files", "zoo_flax_models"]
