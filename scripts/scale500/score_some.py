"""Insurance for the interim evaluation: a few methods on split 0 with exactly the study's
job (same seed), written to scores_interim.json (the study's own scores/split_0.json is
all-or-nothing and may not finish within the session)."""
import dataclasses, json, sys, time
import jax, numpy as np
from absl import app
from experiments import paper
from transferjax import io as tio
from transferjax.data import paper_split
from transferjax.scoring.job import load_target_for_zoo, open_zoo
from transferjax.scoring.rank import score_zoo
from transferjax.baselines import rbm as rbm_lib

METHODS = ("cmi_knn", "source_train_acc", "source_n_classes", "leep", "logme", "h_score", "nce")


def main(argv):
  _, cfg = paper.configs_from_flags()
  zoo = open_zoo(cfg.zoo_dir); target = load_target_for_zoo(cfg.target, zoo, None)
  split = paper_split(target, fraction=cfg.fraction, num_labeled=cfg.num_labeled, seed=0)
  job = dataclasses.replace(cfg.job, rank=dataclasses.replace(cfg.job.rank, seed=cfg.job.rank.seed + 0))
  t0 = time.time()
  scores, _, _ = score_zoo(zoo, split, job, methods=METHODS)
  rbm = tio.load_npz(f"{cfg.workdir}/rbm.npz")
  scores["rbm"] = np.asarray(rbm_lib.rbm_scores({k: jax.numpy.asarray(v) for k, v in rbm.items()},
                                                split.train.images))
  tio.write_json(f"{cfg.workdir}/scores_interim.json",
                 {"scores": {m: np.asarray(v, np.float64) for m, v in scores.items()},
                  "seconds": round(time.time() - t0, 1)})
  print("done", time.time() - t0)


if __name__ == "__main__":
  app.run(main)
