"""Tests of ``transferjax.sources``: your own models on your own images.

No CNN is trained: the zoo holds random parameters, and the target net's
trainer is replaced by a deterministic stand-in (``T`` = label + noise) in both
ranking paths, so they are compared on everything after it.
"""
import json
import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest
import testlib
from PIL import Image

from transferjax.data import load_dataset, load_target, paper_split
from transferjax.data.tasks import SourceTask
from transferjax.errors import ConfigError, DataError, EstimatorError
from transferjax.evaluation.ground_truth import evaluate_ranking, read_ranking
from transferjax.scoring import rank as rank_lib
from transferjax.scoring.methods import RankConfig
from transferjax.scoring.rank import RankJob
from transferjax.scoring.target import ScoringSet
from transferjax.sources import (FeatureFiles, FlaxModel, Preprocess, StreamConfig,
                                 ZooGroup, parse_sources, prepare_images, score_streamed,
                                 write_feature_files)
from transferjax.sources import job as sources_job
from transferjax.sources.stream import plan_chunks
from transferjax.train.zoo import Zoo
from transferjax.transfer.fit import FitConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS3 = ("cmi_knn", "logme", "leep")
QUIET = StreamConfig(progress=False)


def _zoo(q=4):
  tasks = [SourceTask(10 + i, "syn", tuple(range(2 + i % 3)), np.arange(5), np.arange(2))
           for i in range(q)]
  metrics = {"train_accuracy": np.linspace(0.6, 0.9, q),
             "holdout_accuracy": np.linspace(0.5, 0.8, q)}
  return Zoo(testlib.random_params(q, 4, 0), tasks, "lenet20", 20, 4, metrics,
             {"conv_impl": "im2col"})


def _target_npz(path, n=40, size=20):
  rng = np.random.default_rng(3)
  labels = np.arange(n) % 2
  images = rng.random((n, size, size)) * 0.5
  images[labels == 1, 4:10, 4:10] += 0.4
  np.savez(path, images=(images * 255).astype(np.uint8), labels=labels)
  return f"npz:{path}"


def _fake_scoring_set(split, *, protocol, folds, cfg, key, num_target_seeds):
  """T = label + seeded noise on D_a, out-of-fold folds as the real one."""
  del cfg, key, num_target_seeds
  labeled = split.labeled
  rng = np.random.default_rng(0)
  t = (labeled.labels + 0.7 * rng.standard_normal(labeled.num_examples))
  from transferjax.data.splits import stratified_folds
  fold_of = stratified_folds(labeled.labels, folds, seed=int(split.seed))
  assert protocol == "crossfit"
  return ScoringSet(labeled.images, labeled.labels, t[:, None].astype(np.float32),
                    labeled.images, labeled.labels, fold_of, protocol)


@pytest.fixture
def fake_target_net(monkeypatch):
  monkeypatch.setattr(rank_lib, "build_scoring_set", _fake_scoring_set)
  monkeypatch.setattr(sources_job, "build_scoring_set", _fake_scoring_set)


JOB = RankJob(folds=3, fit=FitConfig(batch_size=8, max_epochs=2, patience=1, budgets=()))


def test_zoo_through_sources_equals_todays_path(tmp_path, fake_target_net):
  zoo = _zoo()
  spec = _target_npz(str(tmp_path / "t.npz"))
  split = paper_split(load_target(spec, image_size=20), num_labeled=24)
  old, inp, _ = rank_lib.score_zoo(zoo, split, JOB, methods=METHODS3)
  out = sources_job.run(sources_job.SourcesRankConfig(
      sources="zoo", target=spec, workdir=str(tmp_path / "r"), methods=METHODS3,
      num_labeled=24, job=JOB, stream=QUIET), groups=[ZooGroup(zoo)])
  for m in METHODS3:
    np.testing.assert_array_equal(out["result"].scores[m], old[m])
  # The rows of the sources split are exactly paper_split's.
  rows = sources_job.split_rows(load_target(spec), num_labeled=24)
  np.testing.assert_array_equal(
      load_target(spec).images[np.concatenate([rows["train"], rows["val"]])],
      split.labeled.images)
  data = json.loads((tmp_path / "r" / "ranking.json").read_text())
  assert data["primary"] == "cmi_knn" and data["ranking"][0]["rank"] == 1
  assert data["target_net"] == "lenet20 on gray 20x20"
  for f in ("ranking.csv", "ranking_top.md", "scores.png"):
    assert (tmp_path / "r" / f).stat().st_size > 0


def _folder(root, n_per_class=12, size=24, classes=("cat", "dog"), color=True):
  rng = np.random.default_rng(1)
  for c, name in enumerate(classes):
    os.makedirs(root / name, exist_ok=True)
    for i in range(n_per_class):
      im = (rng.random((size, size, 3)) * 120).astype(np.uint8)
      im[4:12, 4:12, c % 3] += 120
      Image.fromarray(im if color else im[..., 0]).save(root / name / f"{i:03d}.png")
  return root


def _factory_module(tmp_path, monkeypatch, body):
  (tmp_path / "user_models.py").write_text(textwrap.dedent(body))
  monkeypatch.syspath_prepend(str(tmp_path))
  sys.modules.pop("user_models", None)


def test_three_routes_give_identical_rankings(tmp_path, monkeypatch):
  zoo = _zoo()
  target = load_dataset(f"folder:{_folder(tmp_path / 'imgs')}", color=True)
  assert target.images.shape[-1] == 3 and target.image_size == 24
  # Route 3's files are written from the zoo's outputs on every target image.
  write_feature_files(str(tmp_path / "feats"), [ZooGroup(zoo)], target.images)
  # Route 2: a factory module that returns the zoo's models as FlaxModels.
  import transferjax.sources.zoo as zoo_src
  monkeypatch.setattr(zoo_src, "_TEST_ZOO", zoo, raising=False)
  _factory_module(tmp_path, monkeypatch, """
      import transferjax.sources.zoo as z
      def zoo_models():
        return z.zoo_flax_models(z._TEST_ZOO)
  """)
  flax_group, = parse_sources("flax:user_models:zoo_models")
  files_group, = parse_sources(f"files:{tmp_path / 'feats'}")
  rng = np.random.default_rng(0)
  rows = rng.permutation(target.num_examples)[:20]
  labels = target.labels[rows]
  t = (labels + 0.7 * rng.standard_normal(len(rows)))[:, None].astype(np.float32)
  folds = np.arange(len(rows)) % 3
  results = [score_streamed([g], target.images, rows, labels, t, folds, METHODS3,
                            RankConfig(), QUIET)
             for g in (ZooGroup(zoo), flax_group, files_group)]
  assert [r.names for r in results] == [[f"zoo_{i}" for i in range(10, 14)]] * 3
  for m in METHODS3:
    ranks = [np.argsort(-r.scores[m], kind="stable") for r in results]
    np.testing.assert_array_equal(ranks[0], ranks[1])
    np.testing.assert_array_equal(ranks[0], ranks[2])
    np.testing.assert_array_equal(results[0].scores[m], results[2].scores[m])
    np.testing.assert_allclose(results[0].scores[m], results[1].scores[m], rtol=1e-4)


def test_flax_model_feature_layer_and_method(tmp_path):
  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      h = nn.relu(nn.Dense(8, name="body")(x.reshape(x.shape[0], -1)))
      return nn.Dense(3, name="head")(h)

    def features(self, x):
      return nn.relu(self.variables and Net.__call__ and
                     nn.Dense(8, name="body")(x.reshape(x.shape[0], -1)))

  import jax
  module = Net()
  variables = module.init(jax.random.key(0), jnp.zeros((1, 6, 6, 3)))
  pre = Preprocess(6, 3)
  by_layer = FlaxModel(module, variables, "a", pre, feature_layer="body", output="logits")
  d, c = by_layer.shapes()
  assert (d, c) == (8, 3)
  x = np.random.default_rng(0).random((5, 6, 6, 3)).astype(np.float32)
  f, lg = by_layer.outputs(x)
  assert f.shape == (5, 8) and lg.shape == (5, 3)
  with pytest.raises(ConfigError, match=r"no submodule 'nope'.*body"):
    FlaxModel(module, variables, "b", pre, feature_layer="nope", output="logits").shapes()
  with pytest.raises(ConfigError, match="name the features"):
    FlaxModel(module, variables, "c", pre, output="logits")


def test_factory_errors(tmp_path, monkeypatch):
  with pytest.raises(ConfigError, match="cannot import module 'no_such_mod'.*PYTHONPATH"):
    parse_sources("flax:no_such_mod:fn")
  _factory_module(tmp_path, monkeypatch, """
      import flax.linen as nn, jax, jax.numpy as jnp
      from transferjax.sources import FlaxModel, Preprocess
      class Mean(nn.Module):
        @nn.compact
        def __call__(self, x):
          return nn.Dense(4)(x.reshape(x.shape[0], -1)).mean(axis=0)
      def wrong_shape():
        m = Mean()
        return FlaxModel(m, m.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1))), "mean",
                         Preprocess(8, 1))
      def wrong_input():
        m = Mean()
        return FlaxModel(m, m.init(jax.random.key(0), jnp.zeros((1, 5, 5, 1))), "m5",
                         Preprocess(8, 1))
      def not_a_model():
        return 3
      def broken():
        raise RuntimeError("weights missing")
  """)
  with pytest.raises(ConfigError, match=r"returns features \(4,\).*one row per image"):
    parse_sources("flax:user_models:wrong_shape")[0].output_shapes(10)
  with pytest.raises(ConfigError, match=r"cannot run on a \[2, 8, 8, 1\]"):
    parse_sources("flax:user_models:wrong_input")[0].output_shapes(10)
  with pytest.raises(ConfigError, match="returned int; it must return"):
    parse_sources("flax:user_models:not_a_model")
  with pytest.raises(ConfigError, match="factory raised RuntimeError: weights missing"):
    parse_sources("flax:user_models:broken")
  with pytest.raises(ConfigError, match="has no function 'nope'"):
    parse_sources("flax:user_models:nope")


def test_flax_factory_with_orbax_checkpoint(tmp_path, monkeypatch):
  import jax
  import orbax.checkpoint as ocp
  _factory_module(tmp_path, monkeypatch, """
      import flax.linen as nn
      from transferjax.sources import FlaxModel, Preprocess
      class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
          return nn.Dense(5)(x.reshape(x.shape[0], -1))
      def net():
        return FlaxModel(Net(), None, "ckpt_net", Preprocess(4, 1))
  """)
  import user_models
  variables = user_models.Net().init(jax.random.key(1), jnp.zeros((1, 4, 4, 1)))
  ckpt = tmp_path / "ckpt"
  ckptr = ocp.StandardCheckpointer()
  ckptr.save(str(ckpt), variables)
  ckptr.wait_until_finished()
  with pytest.raises(ConfigError, match="has no variables.*@FOLDER"):
    parse_sources("flax:user_models:net")
  group, = parse_sources(f"flax:user_models:net@{ckpt}")
  x = np.random.default_rng(0).random((3, 8, 8, 1)).astype(np.float32)
  (f, lg), = group.outputs([0], x, np.arange(3))
  want = user_models.Net().apply(variables, prepare_images(x, Preprocess(4, 1)))
  np.testing.assert_allclose(f, np.asarray(want), rtol=1e-6)
  assert lg is None and group.output_shapes(3) == [(5, None)]


def test_npz_target_keeps_colour_on_request(tmp_path):
  rng = np.random.default_rng(0)
  path = tmp_path / "rgb.npz"
  np.savez(path, images=(rng.random((6, 10, 10, 3)) * 255).astype(np.uint8),
           labels=np.arange(6) % 2)
  assert load_dataset(f"npz:{path}").images.shape == (6, 10, 10, 1)
  rgb = load_dataset(f"npz:{path}", color=True)
  assert rgb.images.shape == (6, 10, 10, 3) and rgb.channels == 3


def test_tfds_target_keeps_colour_on_request():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=4):
    gray = load_dataset("tfds:cifar10", image_size=16)
    rgb = load_dataset("tfds:cifar10", image_size=16, color=True)
    mnist = load_dataset("tfds:mnist", image_size=14, color=True)
  assert gray.images.shape == (4, 16, 16, 1) and rgb.images.shape == (4, 16, 16, 3)
  assert mnist.images.shape == (4, 14, 14, 1)  # a gray set stays gray


def test_image_folder_loader(tmp_path):
  folder = _folder(tmp_path / "imgs")
  gray = load_dataset(f"folder:{folder}")
  color = load_dataset(f"folder:{folder}", color=True)
  assert gray.images.shape == (24, 24, 24, 1) and color.images.shape == (24, 24, 24, 3)
  assert gray.class_names == ("cat", "dog")
  assert gray.metadata["files"][:2] == ["cat/000.png", "cat/001.png"]
  np.testing.assert_array_equal(gray.labels, np.repeat([0, 1], 12))
  # A pair spec works as for every loader.
  assert load_target(f"folder:{folder}:dog,cat").class_names == ("dog", "cat")
  # Mixed sizes: resized to the smallest side, and said.
  Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(folder / "dog" / "big.png")
  mixed = load_dataset(f"folder:{folder}")
  assert mixed.image_size == 24 and "mixed image sizes" in mixed.metadata["note"]
  # Unreadable image.
  (folder / "cat" / "bad.png").write_bytes(b"not a png")
  with pytest.raises(DataError, match=r"bad\.png: not a readable PNG/JPEG"):
    load_dataset(f"folder:{folder}")


def test_image_folder_with_one_class(tmp_path):
  folder = _folder(tmp_path / "one", classes=("only",))
  with pytest.raises(DataError, match="only class 'only'; a target needs at least two"):
    load_dataset(f"folder:{folder}")
  with pytest.raises(DataError, match="no such directory"):
    load_dataset(f"folder:{tmp_path / 'missing'}")


def test_images_too_small_for_a_source():
  x = np.random.default_rng(0).random((2, 16, 16, 1)).astype(np.float32)
  with pytest.raises(DataError, match=r"takes 32x32 images but the target images are "
                     r"16x16: too small.*--allow_upsample"):
    prepare_images(x, Preprocess(32, 3), source="source 'big'")
  up = prepare_images(x, Preprocess(32, 3, mean=(0.5,), std=(0.25,)),
                      allow_upsample=True)
  assert up.shape == (2, 32, 32, 3)
  np.testing.assert_array_equal(up[..., 0], up[..., 2])  # gray shown as RGB


def _files(folder, shapes, nan=False):
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(0)
  for i, (n, d) in enumerate(shapes):
    f = rng.standard_normal((n, d)).astype(np.float32)
    if nan and i == 1:
      f[3, 2] = np.inf
    np.savez(os.path.join(folder, f"s{i}.npz"), features=f)
  return folder


def test_feature_file_errors(tmp_path):
  wrong_n = FeatureFiles(_files(str(tmp_path / "a"), [(30, 4), (30, 4)]))
  with pytest.raises(DataError, match="have 30 rows but the target has 40 images"):
    wrong_n.output_shapes(40)
  mixed = FeatureFiles(_files(str(tmp_path / "b"), [(40, 4), (39, 4)]))
  with pytest.raises(DataError, match=r"different numbers of rows \(39 rows: s1.npz; "
                     r"40 rows: s0.npz\)"):
    mixed.output_shapes(40)
  bad = FeatureFiles(_files(str(tmp_path / "c"), [(40, 4), (40, 4)], nan=True))
  labels = np.arange(40) % 2
  with pytest.raises(EstimatorError, match=r"source 's1': 1 NaN/inf feature values"):
    score_streamed([bad], np.zeros((40, 1, 1, 1)), np.arange(40), labels,
                   labels[:, None].astype(np.float32), labels, ("logme",),
                   RankConfig(), QUIET)
  np.savez(str(tmp_path / "d.npz"), features=np.array([None, 1], dtype=object))
  os.makedirs(tmp_path / "e")
  os.replace(tmp_path / "d.npz", tmp_path / "e" / "obj.npz")
  with pytest.raises(DataError, match="object array"):
    FeatureFiles(str(tmp_path / "e"))


def test_stream_chunks_resume_and_mixed_widths(tmp_path):
  folder = _files(str(tmp_path / "f"), [(40, 4), (40, 4), (40, 6), (40, 4)])
  group = FeatureFiles(folder)
  chunks = plan_chunks([group], 40, StreamConfig(max_chunk=64))
  assert [c.members for c in chunks] == [(0, 1), (2,), (3,)]
  tiny = plan_chunks([group], 40, StreamConfig(chunk_mb=40 * 4 * 4 / 2**20))
  assert [c.members for c in tiny] == [(0,), (1,), (2,), (3,)]
  labels = np.arange(40) % 2
  args = ([group], np.zeros((40, 1, 1, 1)), np.arange(40), labels,
          (labels + 0.5 * np.random.default_rng(0).standard_normal(40))[:, None],
          np.arange(40) % 3, ("logme", "leep"), RankConfig())
  cfg = StreamConfig(progress=False, cache_dir=str(tmp_path / "cache"), max_chunk=2)
  first = score_streamed(*args, cfg, strict=False)
  assert np.isfinite(first.scores["logme"]).all() and np.isnan(first.scores["leep"]).all()
  assert "needs source-task logits" in first.notes["leep"][0]
  with pytest.raises(ConfigError, match="'leep' needs source-task logits"):
    score_streamed(*args, cfg)
  # Resumed from the cache: no file is read again.
  calls = []
  group.outputs = lambda *a, **k: calls.append(1)
  again = score_streamed(*args, cfg, strict=False)
  assert not calls
  np.testing.assert_array_equal(again.scores["logme"], first.scores["logme"])


def _ranking(tmp_path, names, scores):
  path = tmp_path / "ranking.json"
  path.write_text(json.dumps({"scores": {"cmi_knn": dict(zip(names, scores))}}))
  return str(path)


def test_ground_truth_evaluation(tmp_path):
  names = [f"m{i}" for i in range(5)]
  ranking = _ranking(tmp_path, names, [0.1, 0.5, 0.3, 0.9, 0.2])
  gt = tmp_path / "gt.csv"
  gt.write_text("source,score\n" + "".join(f"m{i},{v}\n" for i, v in
                                           enumerate([0.6, 0.8, 0.7, 0.9, 0.65])))
  ev = evaluate_ranking(ranking, str(gt), str(tmp_path / "ev"))
  st = ev["methods"]["cmi_knn"]
  assert st["spearman"] == pytest.approx(1.0) and st["top1_hit"] == 1.0
  assert ev["ceiling"] is None
  assert (tmp_path / "ev" / "report.md").exists()
  assert (tmp_path / "ev" / "score_vs_ground_truth.png").exists()
  assert read_ranking(str(tmp_path))[0] == names


@pytest.mark.parametrize("rows,match", [
    ("m0,1\nm1,2\nm2,3\nm3,4\n", r"no ground truth for 1 ranked source\(s\) \['m4'\]"),
    ("m0,1\nm1,2\nm2,3\nm3,4\nm4,5\nzz,6\n", r"1 source\(s\) in the ground truth are "
     r"not in the ranking \['zz'\]"),
    ("m0,1\nm0,2\nm2,3\n", "'m0' appears twice"),
    ("m0,1\nm1,x\nm2,3\n", "score 'x' of 'm1' is not a number"),
])
def test_ground_truth_errors(tmp_path, rows, match):
  ranking = _ranking(tmp_path, [f"m{i}" for i in range(5)], [1, 2, 3, 4, 5])
  gt = tmp_path / "gt.csv"
  gt.write_text("source,score\n" + rows)
  with pytest.raises(DataError, match=match):
    evaluate_ranking(ranking, str(gt), str(tmp_path / "ev"))
  assert not (tmp_path / "ev").exists()  # nothing half-written


@pytest.mark.slow  # a fresh interpreter importing jax and flax: ~10 s alone
def test_rank_entry_point_one_line_error(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-m", "experiments.rank", "--sources=flax:no_such_mod:fn",
       f"--workdir={tmp_path / 'w'}"], env=env, capture_output=True, text=True,
      cwd=str(tmp_path))
  assert out.returncode == 2
  assert out.stderr.strip().splitlines()[-1].startswith(
      "error (ConfigError): flax:no_such_mod:fn: cannot import module")
  assert not (tmp_path / "w").exists()
