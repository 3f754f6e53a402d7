"""Catalog adapters (TFDS datasets -> tasks), tested without network.

``tfds.testing.mock_data`` (policy ``USE_CODE``: features from the TFDS
builder code, no metadata files) patches ``tfds.data_source`` to return
random records with the real features' shapes and dtypes; it needs no
TensorFlow for data sources. Each test uses its own ``data_dir`` so that
in-memory splits cached by the pipeline never mix mocked and real data. One
test prepares real array_record files (the TFDS ``mnist`` builder with fake
generated images) and reads them with no mock at all.
"""

import contextlib
import io
import json

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from mtl_jax import data
from mtl_jax.data import catalog, multi_mnist, sprites

SPLITS = ("train", "validation", "test")


@contextlib.contextmanager
def mocked(num_examples=40):
  with tfds.testing.mock_data(num_examples=num_examples,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    yield


def _source(name, split="train"):
  """The mocked TFDS records (call inside ``mocked()``)."""
  return tfds.data_source(name, split=split, data_dir="/unused", download=False)


def _first_batch(config, split="train", batch_size=8):
  return next(data.build(config, split, batch_size=batch_size, seed=0,
                         shuffle=False, drop_remainder=True, num_epochs=1))


def test_catalog_datasets_are_registered():
  assert set(catalog.NAMES) <= set(data.names())
  assert catalog.tfds_name("multi_fashion") == "fashion_mnist"


# --- MultiMNIST ---------------------------------------------------------------


def test_compose_takes_the_max_where_items_overlap():
  left = np.full((28, 28), 10, np.uint8)
  right = np.full((28, 28), 20, np.uint8)
  right[0, 0] = 5  # at canvas (6, 6), inside the overlap
  canvas = multi_mnist.compose(left, right)
  assert canvas.shape == (36, 36)
  assert (canvas[:6, :28] == 10).all() and (canvas[:28, :6] == 10).all()
  assert (canvas[28:34, 6:34] == 20).all() and (canvas[6:34, 28:34] == 20).all()
  assert canvas[6, 6] == 10  # max(10, 5)
  assert (canvas[7:28, 7:28] == 20).all()  # max(10, 20)
  assert not canvas[34:].any() and not canvas[:, 34:].any()  # right ends at 34
  assert canvas[0, 30] == 0 and canvas[30, 0] == 0  # neither item


def test_resize_is_nearest_with_pixel_centres_aligned():
  rng = np.random.default_rng(0)
  left, right = rng.integers(0, 256, (2, 3, 28, 28, 1), dtype=np.uint8)
  canvas = multi_mnist.compose(left[..., 0], right[..., 0])
  keep = np.floor((np.arange(28) + 0.5) * 36 / 28).astype(int)
  small = multi_mnist.make_images(left, right, resize=True)
  assert small.shape == (3, 28, 28, 1) and small.dtype == np.uint8
  np.testing.assert_array_equal(small[..., 0], canvas[:, keep][:, :, keep])
  wide = multi_mnist.make_images(left, right, resize=False)
  np.testing.assert_array_equal(wide[..., 0], canvas)


def test_pairing_is_seeded_and_never_self():
  pool = np.arange(100, 150)
  options = dict(multi_mnist.DEFAULTS, pairs_per_image=3)
  pairs = multi_mnist.pairs(pool, options, "train")
  np.testing.assert_array_equal(pairs, multi_mnist.pairs(pool, options, "train"))
  assert not np.array_equal(pairs, multi_mnist.pairs(pool, dict(options, seed=1), "train"))
  assert pairs.shape == (150, 2) and np.isin(pairs, pool).all()
  assert not np.any(pairs[:, 0] == pairs[:, 1])
  np.testing.assert_array_equal(np.bincount(pairs[:, 0] - 100), np.full(50, 3))


def test_multi_mnist_records_follow_the_recipe(tmp_path):
  spec = data.get_spec("multi_mnist")
  options = dict(spec.defaults)
  with mocked(40):
    source = _source("mnist")
    views = {s: spec.load(options, s, str(tmp_path)) for s in SPLITS}
    records = views["train"].__getitems__(range(len(views["train"])))
  assert [len(views[s]) for s in SPLITS] == [36, 4, 40]
  train_pool = set(views["train"].indices.ravel())
  assert not train_pool & set(views["validation"].indices.ravel())
  for record in records:
    left, right = source[int(record["left_index"])], source[int(record["right_index"])]
    assert record["left_index"] != record["right_index"]
    assert record["left"] == left["label"] and record["right"] == right["label"]
    expected = multi_mnist.make_images(left["image"][None], right["image"][None], True)
    np.testing.assert_array_equal(record["image"], expected[0])


@pytest.mark.parametrize("name", ["multi_mnist", "multi_fashion"])
def test_multi_mnist_batches(tmp_path, name):
  config = {"name": name, "data_dir": str(tmp_path)}
  with mocked(24):
    assert data.input_shape(config) == (28, 28, 1)
    assert data.input_shape(dict(config, resize=False)) == (36, 36, 1)
    assert sorted(data.dataset_tasks(config)) == ["left", "right"]
    batch = _first_batch(config)
  assert batch["inputs"].shape == (8, 28, 28, 1) and batch["inputs"].dtype == np.float32
  assert 0 <= batch["inputs"].min() and batch["inputs"].max() <= 1
  for task in ("left", "right"):
    assert batch["targets"][task].dtype == np.int32
    assert batch["targets"][task].shape == (8,)
    assert batch["mask"][task].dtype == bool and batch["mask"][task].all()


# --- CelebA -------------------------------------------------------------------


def test_celeb_a_has_40_binary_tasks_from_the_attributes(tmp_path):
  config = {"name": "celeb_a", "data_dir": str(tmp_path), "image_size": 16}
  tasks = data.dataset_tasks(config)
  assert len(tasks) == 40
  assert all(t == {"kind": "binary", "num_labels": 1, "metrics": ("accuracy",)}
             for t in tasks.values())
  with mocked(20):
    features = tfds.builder("celeb_a").info.features["attributes"]
    assert tuple(features.keys()) == catalog.CELEB_A_ATTRIBUTES
    batch = _first_batch(config, "validation")
    rows = [_source("celeb_a", "validation")[i] for i in range(8)]
  assert batch["inputs"].shape == (8, 16, 16, 3)
  expected = catalog.resize_area(np.stack([r["image"] for r in rows]), 16)
  np.testing.assert_allclose(batch["inputs"], expected / 255, atol=1e-6)
  assert len(batch["targets"]) == len(batch["mask"]) == 40
  for name in catalog.CELEB_A_ATTRIBUTES:
    target = batch["targets"][name]
    assert target.dtype == np.float32 and target.shape == (8,)
    np.testing.assert_array_equal(target, [r["attributes"][name] for r in rows])


def test_resize_area_averages_boxes():
  image = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1) * 10
  small = catalog.resize_area(image, 2)[0, ..., 0]
  np.testing.assert_array_equal(small, [[25, 45], [105, 125]])
  assert catalog.resize_area(image, 4) is image
  rng = np.random.default_rng(0)
  faces = rng.integers(0, 256, (2, 218, 178, 3), dtype=np.uint8)
  resized = catalog.resize_area(faces, 64)
  assert resized.shape == (2, 64, 64, 3)
  np.testing.assert_allclose(resized.mean(axis=(1, 2)), faces.mean(axis=(1, 2)), atol=0.5)
  flat = np.full((1, 218, 178, 1), 77, np.uint8)
  assert (catalog.resize_area(flat, 64) == 77).all()


# --- dSprites, 3D Shapes, smallNORB -------------------------------------------


def test_dsprites_targets_follow_our_sprites(tmp_path):
  config = {"name": "dsprites", "data_dir": str(tmp_path)}
  assert data.dataset_tasks(config) == sprites.tasks({})
  with mocked(40):
    sizes = [data.num_examples(config, s) for s in SPLITS]
    view = data.get_spec("dsprites").load(dict(data.get_spec("dsprites").defaults),
                                         "test", str(tmp_path))
    records = view.__getitems__(range(len(view)))
    rows = [_source("dsprites")[i] for i in view.indices]
    batch = _first_batch(config, batch_size=4)
  assert sizes == [32, 4, 4]
  shape = np.array([r["label_shape"] for r in rows])
  angle = np.array([r["value_orientation"] for r in rows])
  expected = np.stack([np.sin(np.array([4, 2, 1])[shape] * angle),
                       np.cos(np.array([4, 2, 1])[shape] * angle)], axis=-1)
  np.testing.assert_allclose([r["orientation"] for r in records], expected, atol=1e-6)
  for record, row in zip(records, rows):
    np.testing.assert_array_equal(record["image"], (row["image"] > 0) * 255)
    assert record["x"] == row["value_x_position"] and record["y"] == row["value_y_position"]
  assert batch["inputs"].shape == (4, 64, 64, 1)
  assert set(np.unique(batch["inputs"])) <= {0.0, 1.0}
  assert batch["targets"]["orientation"].shape == (4, 2)


def test_shapes3d_tasks_and_targets(tmp_path):
  config = {"name": "shapes3d", "data_dir": str(tmp_path), "image_size": 32}
  tasks = data.dataset_tasks(config)
  assert {k: v.get("num_classes") for k, v in tasks.items()} == {
      "floor_hue": 10, "wall_hue": 10, "object_hue": 10, "scale": 8, "shape": 4,
      "orientation": None}
  assert tasks["orientation"]["kind"] == "regression"
  with mocked(40):
    view = data.get_spec("shapes3d").load(
        dict(data.get_spec("shapes3d").defaults, image_size=32), "train", str(tmp_path))
    record, row = view[0], _source("shapes3d")[int(view.indices[0])]
  assert record["image"].shape == (32, 32, 3)
  assert record["orientation"] == np.float32(row["value_orientation"] / 30)
  for name in ("floor_hue", "wall_hue", "object_hue", "scale", "shape"):
    assert record[name] == row[f"label_{name}"]


def test_smallnorb_pools_splits_unless_official(tmp_path):
  config = {"name": "smallnorb", "data_dir": str(tmp_path), "image_size": 32}
  official = dict(config, official_split=True)
  assert sorted(data.dataset_tasks(config)) == [
      "azimuth", "category", "elevation", "instance", "lighting"]
  assert "instance" not in data.dataset_tasks(official)
  with mocked(40):
    pooled_sizes = [data.num_examples(config, s) for s in SPLITS]
    official_sizes = [data.num_examples(official, s) for s in SPLITS]
    batch = _first_batch(official)
  assert pooled_sizes == [56, 8, 16]  # 80 pooled examples, 70/10/20
  assert official_sizes == [36, 4, 40]
  assert batch["inputs"].shape == (8, 32, 32, 1)
  assert sorted(batch["targets"]) == ["azimuth", "category", "elevation", "lighting"]


def test_carve_is_disjoint_and_seeded():
  parts = catalog.carve(100, 0, 0.1, 0.2)
  assert [len(parts[s]) for s in SPLITS] == [70, 10, 20]
  np.testing.assert_array_equal(np.sort(np.concatenate(list(parts.values()))), np.arange(100))
  assert not np.array_equal(parts["test"], catalog.carve(100, 1, 0.1, 0.2)["test"])
  assert "test" not in catalog.carve(100, 0, 0.1)


@pytest.mark.parametrize("config, match", [
    ({"name": "dsprites", "test_fraction": 0.95}, "fraction"),
    ({"name": "celeb_a", "image_size": 4}, "image_size must be >= 8"),
    ({"name": "multi_mnist", "pairs_per_image": 0}, "pairs_per_image"),
])
def test_bad_options_raise(tmp_path, config, match):
  with mocked(10), pytest.raises(ValueError, match=match):
    data.num_examples(dict(config, data_dir=str(tmp_path)), "train")


# --- Missing data and real files ----------------------------------------------


@pytest.mark.parametrize("name", catalog.NAMES)
def test_missing_data_names_the_dataset_and_how_to_prepare_it(tmp_path, name):
  tfds_name = catalog.tfds_name(name)
  with pytest.raises(catalog.MissingDataError) as error:
    data.num_examples({"name": name, "data_dir": str(tmp_path)}, "train")
  message = str(error.value)
  assert f"Dataset {name!r} reads the TFDS dataset {tfds_name!r}" in message
  assert f"not prepared under {tmp_path}" in message
  assert "download=True" in message
  assert f"tfds build {tfds_name} --data_dir={tmp_path} --file_format=array_record" in message
  assert catalog.README_SECTION in message
  assert isinstance(error.value, FileNotFoundError)


def test_download_option_reaches_tfds(tmp_path):
  config = {"name": "multi_mnist", "data_dir": str(tmp_path), "download": True}
  with mocked(10):  # download_and_prepare is a no-op under the mock
    assert data.num_examples(config, "test") == 10


def _png(image):
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0]).save(buffer, format="PNG")
  return buffer.getvalue()


class _FakeMnist(tfds.builder_cls("mnist"), skip_registration=True):
  """TFDS's mnist builder writing random PNG digits instead of downloading."""

  name = "mnist"

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    return None

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._fake(20, 0), "test": self._fake(6, 1)}

  def _fake(self, n, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):
      image = rng.integers(0, 256, (28, 28, 1), dtype=np.uint8)
      yield i, {"image": _png(image), "label": int(rng.integers(0, 10))}


def test_prepared_array_record_files_are_read_without_mocks(tmp_path):
  root = str(tmp_path)
  _FakeMnist(data_dir=root, file_format="array_record").download_and_prepare()
  source = tfds.data_source("mnist", split="train", data_dir=root, download=False)
  config = {"name": "multi_mnist", "data_dir": root, "in_memory": False}
  assert [data.num_examples(config, s) for s in SPLITS] == [18, 2, 6]
  view = data.get_spec("multi_mnist").load(dict(multi_mnist.DEFAULTS), "train", root)
  record = view[3]
  left, right = source[int(record["left_index"])], source[int(record["right_index"])]
  expected = multi_mnist.make_images(left["image"][None], right["image"][None], True)
  np.testing.assert_array_equal(record["image"], expected[0])
  assert (record["left"], record["right"]) == (left["label"], right["label"])
  batch = _first_batch(config, batch_size=6)
  assert batch["inputs"].shape == (6, 28, 28, 1)


def test_data_without_random_access_names_the_conversion(tmp_path):
  root = str(tmp_path)
  _FakeMnist(data_dir=root, file_format="array_record").download_and_prepare()
  info = tmp_path / "mnist" / "3.0.1" / "dataset_info.json"
  # Pretend it was prepared as TFRecord (writing TFRecord needs TensorFlow).
  info.write_text(info.read_text().replace('"array_record"', '"tfrecord"'))
  with pytest.raises(catalog.MissingDataError, match="without random access.*"
                     "tfds convert_format --dataset_version_dir=.*array_record"):
    data.num_examples({"name": "multi_mnist", "data_dir": root}, "test")


# --- Shuffled, sharded, resumable batches -------------------------------------


def test_catalog_batches_are_shuffled_sharded_and_resumable(tmp_path):
  config = {"name": "celeb_a", "data_dir": str(tmp_path), "image_size": 8,
            "tasks": ["Male", "Smiling"]}
  build = lambda **kw: data.build(config, "train", **dict(
      dict(batch_size=8, seed=0, shuffle=True, drop_remainder=True), **kw))
  with mocked(48):
    first = next(build())["inputs"]
    assert not np.array_equal(first, next(build(seed=1))["inputs"])
    assert not np.array_equal(first, next(build(shuffle=False))["inputs"])
    iterator = build()
    for _ in range(7):  # past the first epoch of 6 batches
      next(iterator)
    state = json.loads(json.dumps(iterator.get_state()))
    expected = [next(iterator) for _ in range(2)]
    restored = build()
    restored.set_state(state)
    for batch in expected:
      again = next(restored)
      np.testing.assert_array_equal(again["inputs"], batch["inputs"])
      np.testing.assert_array_equal(again["targets"]["Male"], batch["targets"]["Male"])
    parts = [next(build(batch_size=4, process_index=p, process_count=2)) for p in range(2)]
  np.testing.assert_array_equal(np.concatenate([p["inputs"] for p in parts]), first)
  assert sorted(parts[0]["targets"]) == ["Male", "Smiling"]
