"""Tests of ``transfer.finetune``: transplanting conv layers and the ground truth.

A tiny synthetic binary target (20x20, 24/8/20 rows in D_t/D_v/D_e, a weak
signal so AUCs differ between models), 3 random lenet20 "sources" with a
4-class head, 2 seeds: 8 models of 2 epochs. Compiles: one stack of 8 and one
of 3 (the chunked run).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import testlib
import scipy.stats
from sklearn.metrics import roc_auc_score

from transferjax.data.container import Dataset
from transferjax.data.tasks import TargetSplit
from transferjax.errors import CheckpointError, ConfigError, DataError
from transferjax.models import make_cnn
from transferjax.transfer import finetune as ft
from transferjax.transfer.finetune import (binary_auc, finetune_sources,
                                           init_params_stack, transplant)
from transferjax.transfer.fit import FitConfig

CFG = FitConfig(batch_size=8, max_epochs=2, patience=1, budgets=(1, 2))
NUM_SOURCES, NUM_SEEDS = 3, 2
ROOT = jax.random.key(7)


_random_params = testlib.random_params


def _dataset(n, seed, name="syn"):
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 2
  images = rng.random((n, 20, 20, 1)).astype(np.float32) * 0.8
  images[labels == 1, 6:14, 6:14, 0] += 0.15  # Weak: AUCs differ between models.
  return Dataset(np.clip(images, 0, 1), labels, ("neg", "pos"), name)


def _split(test_labels=None):
  test = _dataset(20, 3)
  if test_labels is not None:
    test = Dataset(test.images, test_labels, test.class_names, test.name)
  return TargetSplit(_dataset(24, 1), _dataset(8, 2), test, seed=0)


@pytest.fixture(scope="module", autouse=True)
def _fast_xla():
  """Compile the RNG-heavy init unoptimized (~5x faster to compile here), then
  train optimized (an epoch runs ~10x faster); restored for other modules."""
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  for m in (8, 3):  # The stack sizes of the runs below.
    init_params_stack("lenet20", 2, jax.random.split(jax.random.key(0), m), 20)
  jax.config.update("jax_disable_most_optimizations", False)
  yield
  jax.config.update("jax_disable_most_optimizations", old)


@pytest.fixture(scope="module")
def sources():
  return _random_params(NUM_SOURCES, 4, seed=11)


@pytest.fixture(scope="module")
def run_all(sources):
  """All 8 models in one chunk; records what ``fit_models`` was given."""
  calls = []
  real = ft.fit_models

  def spy(init, *args, **kwargs):
    calls.append({"init": jax.tree.map(np.asarray, init), "args": args,
                  "kwargs": kwargs})
    return real(init, *args, **kwargs)

  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(ft, "fit_models", spy)
    out = finetune_sources(sources, _split(), num_seeds=NUM_SEEDS, cfg=CFG,
                           root_key=ROOT)
  return out, calls


def test_transplant_copies_conv_layers_only(sources):
  fresh = _random_params(NUM_SOURCES, 2, seed=5)
  moved = transplant(sources, fresh)  # Source head (4) wider than target's (2).
  assert sorted(moved) == sorted(fresh)
  for name in ("conv1", "conv2"):
    for key in ("kernel", "bias"):
      np.testing.assert_array_equal(np.asarray(moved[name][key]), sources[name][key])
  for name in ("fc", "head"):
    for key in ("kernel", "bias"):
      np.testing.assert_array_equal(np.asarray(moved[name][key]), fresh[name][key])
  assert moved["head"]["kernel"].shape == (NUM_SOURCES, 200, 2)


def test_transplant_errors(sources):
  fresh = _random_params(NUM_SOURCES, 2, seed=5)
  missing = {k: v for k, v in sources.items() if k != "conv2"}
  with pytest.raises(ConfigError, match="no layer 'conv2'"):
    transplant(missing, fresh)
  wrong = dict(sources)
  wrong["conv1"] = {"kernel": np.zeros((NUM_SOURCES, 5, 5, 1, 32), np.float32),
                    "bias": sources["conv1"]["bias"]}
  with pytest.raises(ConfigError, match="'conv1'.*differ"):
    transplant(wrong, fresh)


def test_binary_auc_matches_references():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 50)
  logits = rng.standard_normal((50, 2)) + labels[:, None] * np.array([0.0, 0.7])
  logits = np.round(logits, 1)  # Ties in the margin count one half.
  margin = logits[:, 1] - logits[:, 0]
  auc = binary_auc(labels, logits)
  assert auc == pytest.approx(roc_auc_score(labels, margin), abs=1e-12)
  # Mann-Whitney: AUC = U / (n_pos * n_neg), an independent formula.
  u = scipy.stats.mannwhitneyu(margin[labels == 1], margin[labels == 0]).statistic
  assert auc == pytest.approx(u / (labels.sum() * (1 - labels).sum()), abs=1e-12)


def test_finetune_shapes(run_all):
  out, _ = run_all
  assert out.auc.shape == out.epochs.shape == (NUM_SOURCES, NUM_SEEDS)
  assert out.no_transfer.shape == out.no_transfer_epochs.shape == (NUM_SEEDS,)
  assert sorted(out.budget_auc) == sorted(out.budget_no_transfer) == [1, 2]
  for b in (1, 2):
    assert out.budget_auc[b].shape == (NUM_SOURCES, NUM_SEEDS)
    assert out.budget_no_transfer[b].shape == (NUM_SEEDS,)
  for a in (out.auc, out.no_transfer, *out.budget_auc.values()):
    assert np.all((a >= 0) & (a <= 1))
  assert np.all((out.epochs >= 1) & (out.epochs <= CFG.max_epochs))
  # The weak signal makes the models differ (else chunk tests below are vacuous).
  assert len(np.unique(np.round(out.auc, 6))) > 1


def test_initial_params_follow_the_documented_keys(run_all, sources):
  _, calls = run_all
  assert len(calls) == 1
  init, kwargs = calls[0]["init"], calls[0]["kwargs"]
  pairs = [(i, s) for s in range(NUM_SEEDS) for i in range(NUM_SOURCES + 1)]
  keys = jnp.stack([jax.random.fold_in(jax.random.fold_in(ROOT, s), i)
                    for i, s in pairs])
  fresh = init_params_stack("lenet20", 2,
                            jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys), 20)
  for j, (i, s) in enumerate(pairs):
    for name in init:
      src = i < NUM_SOURCES and name.startswith("conv")
      for key in init[name]:
        want = sources[name][key][i] if src else np.asarray(fresh[name][key][j])
        np.testing.assert_array_equal(init[name][key][j], want)
  assert kwargs["names"][0] == "source 0, seed 0"
  assert kwargs["names"][NUM_SOURCES] == "no-transfer, seed 0"
  # D_t trains, D_v early-stops: the stacked rows are [D_t, D_v].
  images, labels, train_idx, train_len, val_idx, val_len = calls[0]["args"][:6]
  assert images.shape[0] == 32 and np.all(train_len == 24) and np.all(val_len == 8)
  np.testing.assert_array_equal(train_idx[0], np.arange(24))
  np.testing.assert_array_equal(val_idx[0], np.arange(24, 32))


def test_results_do_not_depend_on_model_chunk(run_all, sources):
  out, _ = run_all
  # 8 models in chunks of 3: the last chunk (2 models) is padded with a copy.
  chunked = finetune_sources(sources, _split(), num_seeds=NUM_SEEDS, cfg=CFG,
                             root_key=ROOT, model_chunk=3)
  np.testing.assert_array_equal(chunked.epochs, out.epochs)
  np.testing.assert_array_equal(chunked.no_transfer_epochs, out.no_transfer_epochs)
  np.testing.assert_allclose(chunked.auc, out.auc, atol=1e-6)
  np.testing.assert_allclose(chunked.no_transfer, out.no_transfer, atol=1e-6)
  for b in (1, 2):
    np.testing.assert_allclose(chunked.budget_auc[b], out.budget_auc[b], atol=1e-6)
    np.testing.assert_allclose(chunked.budget_no_transfer[b],
                               out.budget_no_transfer[b], atol=1e-6)


def test_finished_chunks_are_restored_not_recomputed(run_all, sources, tmp_path):
  out, _ = run_all
  run = lambda **kw: finetune_sources(sources, _split(), num_seeds=NUM_SEEDS, cfg=CFG,
                                      root_key=ROOT, model_chunk=3,
                                      chunk_dir=str(tmp_path), **kw)
  first = run()
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      "chunk_000000.json", "chunk_000000_logits.npz", "chunk_000003.json",
      "chunk_000003_logits.npz", "chunk_000006.json", "chunk_000006_logits.npz"]
  np.testing.assert_allclose(first.auc, out.auc, atol=1e-6)
  # A rerun fine-tunes only the chunk whose file is missing.
  (tmp_path / "chunk_000003.json").unlink()
  calls = []
  real = ft.fit_models
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(ft, "fit_models", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = run()
  assert len(calls) == 1
  np.testing.assert_array_equal(again.auc, first.auc)
  np.testing.assert_array_equal(again.epochs, first.epochs)
  np.testing.assert_array_equal(again.no_transfer, first.no_transfer)
  np.testing.assert_array_equal(again.test_logits, first.test_logits)
  for b in (1, 2):
    np.testing.assert_array_equal(again.budget_auc[b], first.budget_auc[b])
  # Files of another chunking are refused, not silently mixed in.
  with pytest.raises(CheckpointError, match="other \\(source, seed\\) pairs"):
    finetune_sources(sources, _split(), num_seeds=NUM_SEEDS, cfg=CFG, root_key=ROOT,
                     model_chunk=8, chunk_dir=str(tmp_path))


def test_no_transfer_ignores_the_sources(run_all):
  out, _ = run_all
  other = finetune_sources(_random_params(NUM_SOURCES, 4, seed=99), _split(),
                           num_seeds=NUM_SEEDS, cfg=CFG, root_key=ROOT)
  np.testing.assert_array_equal(other.no_transfer, out.no_transfer)
  np.testing.assert_array_equal(other.no_transfer_epochs, out.no_transfer_epochs)
  assert not np.array_equal(other.auc, out.auc)


def test_input_errors(sources):
  with pytest.raises(DataError, match="one class"):
    finetune_sources(sources, _split(test_labels=np.zeros(20, np.int32)),
                     num_seeds=1, cfg=CFG, root_key=ROOT)
  three = Dataset(_dataset(24, 1).images, np.arange(24) % 3, ("a", "b", "c"), "syn")
  split = TargetSplit(three, _dataset(8, 2), _dataset(20, 3))
  with pytest.raises(ConfigError, match="3 classes.*head has 2"):
    finetune_sources(sources, split, num_seeds=1, cfg=CFG, root_key=ROOT)
