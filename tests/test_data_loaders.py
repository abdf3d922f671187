"""Loaders: shapes, ranges, determinism, caches, TFDS mocks and bad input."""
import os

import numpy as np
import pytest
import skimage.transform

from transferjax import io
from transferjax.data import (VALID_NAMES, dataset_options, display_name, load_dataset,
                              resize_images, to_gray)
from transferjax.data import scenes as scenes_lib
from transferjax.errors import DataError


def _check(ds, size, num_classes=None):
  assert ds.images.dtype == np.float32 and ds.labels.dtype == np.int32
  assert ds.images.shape[1:] == (size, size, 1) and ds.image_size == size
  assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0
  assert ds.images.std() > 0.01  # Not blank.
  if num_classes is not None:
    assert ds.num_classes == num_classes
  assert set(np.unique(ds.labels)) <= set(range(ds.num_classes))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  # One cache per pytest session (shared with test_data_splits.py), never ~/.cache.
  path = tmp_path_factory.getbasetemp() / "transferjax_cache"
  path.mkdir(exist_ok=True)
  return str(path)


# --- preprocess -------------------------------------------------------------

def test_to_gray_matches_luminance_weights():
  rng = np.random.default_rng(0)
  rgb = rng.uniform(size=(3, 5, 6, 3))
  want = rgb @ np.array([0.2125, 0.7154, 0.0721])  # BT.709, float64 reference.
  np.testing.assert_allclose(to_gray(rgb)[..., 0], want, atol=1e-6)
  assert to_gray(rgb[..., :1]).shape == (3, 5, 6, 1)
  assert to_gray(rgb[..., 0]).shape == (3, 5, 6, 1)
  with pytest.raises(DataError, match="channels"):
    to_gray(np.zeros((2, 4, 4, 2)))


def test_batch_resize_equals_per_image_resize():
  rng = np.random.default_rng(1)
  images = rng.uniform(size=(4, 28, 28))
  got = resize_images(images, 20)[..., 0]
  want = np.stack([skimage.transform.resize(x, (20, 20), order=1, mode="reflect",
                                            anti_aliasing=True) for x in images])
  np.testing.assert_allclose(got, want, atol=1e-5)
  # A constant image stays constant; non-square images are center-cropped.
  assert np.allclose(resize_images(np.full((1, 30, 40), 0.3), 10), 0.3)
  wide = np.zeros((1, 10, 30)); wide[:, :, 10:20] = 1.0
  assert np.allclose(resize_images(wide, 10), 1.0)


# --- registry ---------------------------------------------------------------

def test_unknown_name_lists_valid_names():
  with pytest.raises(DataError, match=r"Unknown data set 'places'.*mnist.*scenes.*tfds:NAME"):
    load_dataset("places")
  assert "npz:PATH" in VALID_NAMES


def test_unknown_option_is_reported():
  with pytest.raises(DataError, match=r"no option\(s\) \['imagesize'\].*image_size"):
    load_dataset("faces", imagesize=10)


def test_mixed_pool_name_combines_parts():
  mixed = load_dataset("digits+faces", image_size=12)
  digits, faces = load_dataset("digits", image_size=12), load_dataset("faces", image_size=12)
  _check(mixed, 12, 12)
  assert mixed.name == "digits+faces"
  assert mixed.class_names[:2] == ("digits/0", "digits/1")
  assert mixed.class_names[10:] == ("faces/non-face", "faces/face")
  np.testing.assert_array_equal(mixed.images[:1797], digits.images)
  np.testing.assert_array_equal(mixed.labels[1797:], faces.labels + 10)
  assert [p["name"] for p in mixed.metadata["pools"]] == ["digits", "faces"]
  # Options: those every part accepts, so mnist+digits has no cache_dir.
  assert set(dataset_options("mnist+digits")) == {"image_size", "seed"}
  assert "cache_dir" in dataset_options("mnist")
  with pytest.raises(DataError, match=r"no option\(s\) \['cache_dir'\]"):
    load_dataset("mnist+digits", cache_dir="/nonexistent")
  with pytest.raises(DataError, match="Unknown data set 'places'"):
    load_dataset("digits+places")
  with pytest.raises(DataError, match="repeat"):
    load_dataset("faces+faces")


# --- built-in real data -----------------------------------------------------

def test_mnist(cache_dir):
  ds = load_dataset("mnist", image_size=12, cache_dir=cache_dir)
  _check(ds, 12, 10)
  assert ds.num_examples == 5000 and np.all(ds.class_counts() == 500)
  assert ds.class_names == tuple(str(d) for d in range(10))
  again = load_dataset("mnist", image_size=12, cache_dir=cache_dir)  # From cache.
  np.testing.assert_array_equal(again.images, ds.images)
  # Mean digit images differ: a digit's images sit closer to their own mean.
  means = np.stack([ds.images[ds.labels == c].mean(0) for c in range(10)])
  x = ds.images[:200].reshape(200, -1)
  d = ((x[:, None] - means.reshape(10, -1)[None]) ** 2).sum(-1)
  assert np.mean(d.argmin(1) == ds.labels[:200]) > 0.6


def test_digits_and_faces():
  digits = load_dataset("digits", image_size=16)
  _check(digits, 16, 10)
  assert digits.num_examples == 1797
  faces = load_dataset("faces")
  _check(faces, 20, 2)
  assert faces.class_names == ("non-face", "face")
  np.testing.assert_array_equal(faces.class_counts(), [100, 100])
  # lfw_subset: the first 100 are faces (label 1).
  assert np.all(faces.labels[:100] == 1) and np.all(faces.labels[100:] == 0)


# --- scenes -----------------------------------------------------------------

def test_scenes_small_cached_and_deterministic(cache_dir):
  opts = dict(image_size=10, samples_per_class=3, grid=(2, 2),
              photos=("camera", "coins", "china"), cache_dir=cache_dir)
  ds = load_dataset("scenes", **opts)
  _check(ds, 10, 12)
  np.testing.assert_array_equal(ds.class_counts(), 3)
  assert ds.class_names[:2] == ("camera/r0c0", "camera/r0c1")
  assert ds.class_names[-1] == "china/r1c1"
  assert not ds.metadata["from_cache"] and os.path.exists(ds.metadata["cache_path"])
  again = load_dataset("scenes", **opts)
  assert again.metadata["from_cache"]
  np.testing.assert_array_equal(again.images, ds.images)
  # The cache is keyed by the options: another seed gives other crops.
  other = load_dataset("scenes", **{**opts, "seed": 1})
  assert not other.metadata["from_cache"]
  assert not np.array_equal(other.images, ds.images)
  # A photo's crops do not depend on which other photos are used.
  alone = load_dataset("scenes", **{**opts, "photos": ("coins",), "use_cache": False})
  np.testing.assert_array_equal(alone.images, ds.images[ds.labels // 4 == 1])


def test_scenes_corrupt_cache_is_rebuilt(tmp_path):
  opts = dict(image_size=8, samples_per_class=2, grid=(1, 2), photos=("moon",),
              cache_dir=str(tmp_path))
  ds = load_dataset("scenes", **opts)
  with open(ds.metadata["cache_path"], "wb") as f:
    f.write(b"garbage")
  again = load_dataset("scenes", **opts)
  np.testing.assert_array_equal(again.images, ds.images)


def test_scenes_crops_come_from_their_region():
  # Every crop of region (r, c) lies inside it, so a crop resized from the
  # region's own pixels matches that region's intensity range.
  photo = scenes_lib.load_photo("camera")
  images, labels, names = scenes_lib.generate_scenes(
      image_size=8, samples_per_class=4, grid=(2, 2), seed=0, photos=("camera",))
  for k, name in enumerate(names):
    r, c = int(name[-3]), int(name[-1])
    h, w = photo.shape
    region = photo[r * h // 2:(r + 1) * h // 2, c * w // 2:(c + 1) * w // 2]
    crops = images[labels == k]
    assert crops.min() >= region.min() - 1e-5 and crops.max() <= region.max() + 1e-5


def test_scenes_bad_options(tmp_path):
  with pytest.raises(DataError, match="unknown photos"):
    load_dataset("scenes", photos=("nope",), cache_dir=str(tmp_path))
  with pytest.raises(DataError, match="grid"):
    load_dataset("scenes", grid=(0, 3), cache_dir=str(tmp_path))


# --- spots (synthetic) ------------------------------------------------------

def test_spots_shapes_balance_and_darker_centres():
  ds = load_dataset("spots", num_examples=2000, seed=3)
  _check(ds, 9, 2)
  assert ds.metadata["synthetic"] is True
  assert display_name(ds) == "spots (synthetic)"
  assert all("synthetic" in c for c in ds.class_names)
  assert ds.labels.mean() == pytest.approx(0.05, abs=1e-3)
  centre = ds.images[:, 3:6, 3:6, 0].mean((1, 2))
  border = ds.images[:, :, :, 0].mean((1, 2))
  pos, neg = ds.labels == 1, ds.labels == 0
  # Positives are darker at the centre, relative to their own patch ...
  assert (border - centre)[pos].mean() > (border - centre)[neg].mean() + 0.05
  # ... and a harder setting (less contrast) shrinks the gap.
  faint = load_dataset("spots", num_examples=2000, seed=3, contrast=0.05)
  f_centre = faint.images[:, 3:6, 3:6, 0].mean((1, 2))
  f_gap = (faint.images[..., 0].mean((1, 2)) - f_centre)
  assert f_gap[pos].mean() < (border - centre)[pos].mean()


def test_spots_seeded_and_resizable():
  a = load_dataset("spots", num_examples=300, seed=1)
  b = load_dataset("spots", num_examples=300, seed=1)
  c = load_dataset("spots", num_examples=300, seed=2)
  np.testing.assert_array_equal(a.images, b.images)
  assert not np.array_equal(a.images, c.images)
  _check(load_dataset("spots", num_examples=300, image_size=20), 20, 2)
  with pytest.raises(DataError, match="positives"):
    load_dataset("spots", num_examples=10, positive_fraction=0.01)


# --- npz --------------------------------------------------------------------

def test_npz_roundtrip_dtypes(tmp_path):
  rng = np.random.default_rng(0)
  u8 = rng.integers(0, 256, size=(6, 12, 12), dtype=np.uint8)
  labels = np.array([0, 1, 2, 0, 1, 2])
  path = str(tmp_path / "a.npz")
  io.save_npz(path, images=u8, labels=labels, class_names=np.array(["a", "b", "c"]))
  ds = load_dataset(f"npz:{path}")
  _check(ds, 12, 3)
  np.testing.assert_allclose(ds.images[..., 0], u8 / 255.0, atol=1e-6)
  assert ds.class_names == ("a", "b", "c")
  # RGB floats outside [0, 1] are min-max scaled, with a note.
  rgb = rng.normal(size=(6, 12, 12, 3)) * 100
  io.save_npz(path, images=rgb, labels=labels)
  ds = load_dataset(f"npz:{path}", image_size=8)
  _check(ds, 8, 3)
  assert "min-max" in ds.metadata["note"]


def test_npz_bad_files(tmp_path):
  garbage = tmp_path / "garbage.npz"
  garbage.write_bytes(b"this is not a zip file at all")
  with pytest.raises(DataError, match="not a readable .npz"):
    load_dataset(f"npz:{garbage}")
  path = str(tmp_path / "b.npz")
  io.save_npz(path, images=np.zeros((5, 4, 4), np.uint8), labels=np.zeros(4, int))
  with pytest.raises(DataError, match="5 images but labels of shape"):
    load_dataset(f"npz:{path}")
  io.save_npz(path, pictures=np.zeros((5, 4, 4)), labels=np.zeros(5, int))
  with pytest.raises(DataError, match=r"missing array\(s\) \['images'\]"):
    load_dataset(f"npz:{path}")
  np.savez(path, images=np.array([np.zeros(2), "x"], dtype=object),
           labels=np.zeros(2, int))
  with pytest.raises(DataError, match="Object arrays are not accepted"):
    load_dataset(f"npz:{path}")
  with pytest.raises(DataError, match="does not exist"):
    load_dataset(f"npz:{tmp_path / 'missing.npz'}")


# --- tfds -------------------------------------------------------------------

def test_tfds_mock_mnist_and_rgb_cifar10():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=10):
    ds = load_dataset("tfds:mnist", image_size=14)
    assert ds.num_examples == 10 and ds.num_classes == 10
    _check(ds, 14)
    rgb = load_dataset("tfds:cifar10", image_size=16, max_examples=6, seed=1)
    assert rgb.num_examples == 6 and rgb.name == "tfds:cifar10"
    _check(rgb, 16)
    src = tfds.data_source("cifar10", split="train")
    want = resize_images(to_gray(np.asarray(src[0]["image"])[None] / 255.0), 16)
    full = load_dataset("tfds:cifar10", image_size=16)
    np.testing.assert_allclose(full.images[0], want[0], atol=1e-6)


def test_tfds_unprepared_offline_names_alternatives(tmp_path):
  with pytest.raises(DataError, match=r"not prepared.*--dataset=mnist.*scenes"):
    load_dataset("tfds:mnist", data_dir=str(tmp_path), download=False)
