"""The no-transfer nets of the limited-500 ground truth (split 0, seeds 0 and 1), made
exactly as finetune_sources makes model (i = num_sources, s): same keys, same fit, so the
interim evaluation has its baseline before the GT reaches those models (chunk 7 / 15)."""
import dataclasses, json, sys
import jax, jax.numpy as jnp, numpy as np
from transferjax.scoring.job import load_target_for_zoo, open_zoo
from transferjax.data import paper_split
from transferjax.transfer.finetune import binary_auc, init_params_stack
from transferjax.transfer.fit import FitConfig, fit_models, pad_index_sets
wd = sys.argv[1]
zoo = open_zoo(f"{wd}/zoo"); target = load_target_for_zoo("spots", zoo, None)
split = paper_split(target, fraction=0.1, num_labeled=None, seed=0)
cfg = dataclasses.replace(FitConfig(), arch=zoo.arch, max_classes=2)
q = len(zoo.tasks); root = jax.random.fold_in(jax.random.key(0), 0)
pairs = [(q, 0), (q, 1)]
keys = jnp.stack([jax.random.fold_in(jax.random.fold_in(root, s), i) for i, s in pairs])
init = init_params_stack(cfg.arch, cfg.max_classes, jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys),
                         split.train.image_size, cfg.conv_impl)
order = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
images = np.concatenate([split.train.images, split.val.images]); labels = np.concatenate([split.train.labels, split.val.labels])
n_t, n_v = split.train.num_examples, split.val.num_examples
ti, tl = pad_index_sets([np.arange(n_t)] * 2); vi, vl = pad_index_sets([np.arange(n_t, n_t + n_v)] * 2)
res = fit_models(init, images, labels, ti, tl, vi, vl, np.full(2, split.train.num_classes), order, cfg,
                 eval_images=split.test.images, names=["no-transfer, seed 0", "no-transfer, seed 1"])
out = {"auc": [binary_auc(split.test.labels, res.eval_logits[j]) for j in range(2)],
       "epochs": [int(e) for e in res.epochs_run]}
json.dump(out, open(f"{wd}/no_transfer_interim.json", "w")); print(out)
