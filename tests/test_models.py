"""Tests of the small CNNs: parameter counts, shapes, conv equivalences, errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transferjax.errors import ConfigError
from transferjax.models import (activation_floats_per_example, make_cnn,
                                masked_logits)


def _count(params):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def _init(arch, max_classes, conv_impl="im2col", seed=0):
  size = {"lenet20": 20, "spot9": 9}[arch]
  model = make_cnn(arch, max_classes, conv_impl)
  params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, size, size, 1)))
  return model, params["params"]


@pytest.mark.parametrize("conv_impl", ["xla", "im2col", "patches", "xla_vjp"])
def test_lenet20_parameter_count_by_hand(conv_impl):
  _, params = _init("lenet20", 20, conv_impl)
  conv1 = 3 * 3 * 1 * 32 + 32
  conv2 = 3 * 3 * 32 * 64 + 64
  fc = (5 * 5 * 64) * 200 + 200  # 20 -> pool 10 -> pool 5.
  head = 200 * 20 + 20
  assert _count(params) == conv1 + conv2 + fc + head == 343_036
  assert set(params) == {"conv1", "conv2", "fc", "head"}
  assert params["conv1"]["kernel"].shape == (3, 3, 1, 32)


def test_spot9_parameter_count_by_hand():
  _, params = _init("spot9", 2)
  conv1 = 3 * 3 * 1 * 32 + 32
  conv2 = 3 * 3 * 32 * 64 + 64
  fc = (4 * 4 * 64) * 200 + 200  # 9 -> pool 4, no second pool.
  head = 200 * 2 + 2
  assert _count(params) == conv1 + conv2 + fc + head


@pytest.mark.parametrize("arch,size", [("lenet20", 20), ("spot9", 9)])
def test_output_shapes(arch, size):
  model, params = _init(arch, 7)
  x = jnp.ones((5, size, size, 1))
  logits, feats = model.apply({"params": params}, x)
  assert logits.shape == (5, 7)
  assert feats.shape == (5, 200)
  assert np.all(np.asarray(feats) >= 0)  # ReLU features.


@pytest.mark.parametrize("arch,size,impl", [("lenet20", 20, "im2col"),
                                            ("spot9", 9, "im2col"),
                                            ("lenet20", 20, "patches"),
                                            ("spot9", 9, "xla_vjp")])
def test_im2col_equals_xla_conv_same_params(arch, size, impl):
  xla_model, params = _init(arch, 5, "xla", seed=3)
  im2col_model = make_cnn(arch, 5, impl)
  x = jax.random.uniform(jax.random.PRNGKey(1), (4, size, size, 1))
  with jax.default_matmul_precision("highest"):
    a = xla_model.apply({"params": params}, x)
    b = im2col_model.apply({"params": params}, x)
  for u, v in zip(a, b):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-5, atol=1e-5)


def _numpy_conv_same(x, kernel, bias):
  """Float64 3x3 SAME cross-correlation, NHWC x HWIO (independent reference)."""
  b, h, w, _ = x.shape
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.zeros((b, h, w, kernel.shape[-1]))
  for i in range(3):
    for j in range(3):
      out += np.einsum("bhwc,co->bhwo", xp[:, i:i + h, j:j + w, :], kernel[i, j])
  return out + bias


@pytest.mark.parametrize("conv_impl", ["xla", "im2col", "patches", "xla_vjp"])
def test_conv1_matches_float64_numpy(conv_impl):
  _, params = _init("lenet20", 2, conv_impl, seed=5)
  x = np.asarray(jax.random.uniform(jax.random.PRNGKey(2), (2, 20, 20, 1)))
  from transferjax.models.cnn import Conv3x3
  conv = Conv3x3(32, conv_impl)
  # conv2-like shapes too (several input channels exercise the patch order).
  kernel = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (3, 3, 3, 5)))
  bias = np.arange(5, dtype=np.float32)
  x3 = np.asarray(jax.random.uniform(jax.random.PRNGKey(6), (2, 6, 6, 3)))
  with jax.default_matmul_precision("highest"):
    got = conv.apply({"params": params["conv1"]}, jnp.asarray(x))
    got3 = Conv3x3(5, conv_impl).apply({"params": {"kernel": kernel, "bias": bias}},
                                       jnp.asarray(x3))
  np.testing.assert_allclose(
      np.asarray(got3), _numpy_conv_same(x3.astype(np.float64), kernel, bias),
      rtol=1e-5, atol=1e-5)
  want = _numpy_conv_same(x.astype(np.float64),
                          np.asarray(params["conv1"]["kernel"], np.float64),
                          np.asarray(params["conv1"]["bias"], np.float64))
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_vmapped_im2col_equals_per_model():
  model = make_cnn("lenet20", 4, "im2col")
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  stack = jax.vmap(lambda k: model.init(k, jnp.zeros((1, 20, 20, 1)))["params"])(keys)
  x = jax.random.uniform(jax.random.PRNGKey(9), (6, 20, 20, 1))
  with jax.default_matmul_precision("highest"):
    feats = jax.vmap(lambda p: model.apply({"params": p}, x)[1])(stack)
    for i in range(3):
      one = model.apply({"params": jax.tree.map(lambda a, i=i: a[i], stack)}, x)[1]
      np.testing.assert_allclose(np.asarray(feats[i]), np.asarray(one),
                                 rtol=1e-5, atol=1e-5)


def test_wrong_image_size_names_expected_size():
  model, params = _init("lenet20", 3)
  with pytest.raises(ConfigError, match=r"'lenet20' takes 20x20x1 .* got 9x9"):
    model.apply({"params": params}, jnp.zeros((1, 9, 9, 1)))
  spot, sparams = _init("spot9", 3)
  with pytest.raises(ConfigError, match=r"'spot9' takes 9x9x1"):
    spot.apply({"params": sparams}, jnp.zeros((1, 20, 20, 1)))
  with pytest.raises(ConfigError, match="1\\]"):
    model.apply({"params": params}, jnp.zeros((1, 20, 20, 3)))


def test_bad_arch_conv_impl_and_head():
  with pytest.raises(ConfigError, match="Unknown arch 'vgg'"):
    make_cnn("vgg", 3)
  with pytest.raises(ConfigError, match="Unknown conv_impl 'fft'"):
    make_cnn("lenet20", 3, "fft")
  with pytest.raises(ConfigError, match="max_classes must be >= 2"):
    make_cnn("lenet20", 1)


def test_masked_logits_padded_columns_and_softmax_equivalence():
  logits = jax.random.normal(jax.random.PRNGKey(0), (4, 6)) * 3
  masked = masked_logits(logits, jnp.int32(3))
  assert np.all(np.asarray(masked[:, 3:]) == np.finfo(np.float32).min)
  np.testing.assert_array_equal(np.asarray(masked[:, :3]), np.asarray(logits[:, :3]))
  p_masked = jax.nn.softmax(masked)
  p_sliced = jax.nn.softmax(logits[:, :3])
  np.testing.assert_allclose(np.asarray(p_masked[:, :3]), np.asarray(p_sliced),
                             rtol=1e-6)
  assert np.all(np.asarray(p_masked[:, 3:]) == 0)


def test_activation_floats_counts_im2col_patches():
  xla = activation_floats_per_example("lenet20", "xla")
  im2col = activation_floats_per_example("lenet20", "im2col")
  assert xla == 20 * 20 * 32 + 10 * 10 * 32 + 10 * 10 * 64 + 5 * 5 * 64 + 400
  assert im2col - xla == 20 * 20 * 9 + 10 * 10 * 288


@pytest.mark.parametrize("arch,size", [("lenet20", 20), ("spot9", 9)])
def test_reshape_pool_model_equals_flax_pool_model(arch, size):
  # spot9 pools 9 -> 4 (VALID drops the last row/column): the odd case.
  fast, params = _init(arch, 3)
  flax_pool = make_cnn(arch, 3, pool_impl="flax")
  x = jax.random.uniform(jax.random.PRNGKey(3), (4, size, size, 1))
  for u, v in zip(fast.apply({"params": params}, x),
                  flax_pool.apply({"params": params}, x)):
    np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
  with pytest.raises(ConfigError, match="Unknown pool_impl 'avg'"):
    make_cnn(arch, 3, pool_impl="avg")
