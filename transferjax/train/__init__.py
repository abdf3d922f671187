"""The vmapped, sharded, resumable zoo trainer and its reusable train step."""
from transferjax.train.step import (cross_entropy, epoch_permutation,
                                    make_evaluator, make_init,
                                    make_multi_step_runner, make_optimizer,
                                    make_stack_apply, make_train_step,
                                    sample_batch)
from transferjax.train.zoo import (DEFINING_FLAGS, Zoo, ZooConfig,
                                   bytes_per_model, load_zoo, model_mesh,
                                   models_per_chunk, num_steps, run,
                                   task_arrays, train_zoo, zoo_features, zoo_outputs,
                                   zoo_logits)

__all__ = [
    "DEFINING_FLAGS", "Zoo", "ZooConfig", "bytes_per_model", "cross_entropy",
    "epoch_permutation", "load_zoo", "make_evaluator", "make_init",
    "make_multi_step_runner", "make_optimizer", "make_stack_apply",
    "make_train_step", "model_mesh", "models_per_chunk", "num_steps", "run",
    "sample_batch", "task_arrays", "train_zoo", "zoo_features", "zoo_logits", "zoo_outputs",
]
