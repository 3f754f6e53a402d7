"""Sprites: deterministic generation, factor distributions, images that
depict their factors, and the TFDS builder's splits and caches."""

import math
import os

import numpy as np
import pytest

from mtl_jax import data
from mtl_jax.data import sprites

OPTIONS = dict(sprites.DEFAULTS, num_train=1500, num_validation=10, num_test=10)


@pytest.fixture(scope="module")
def train64():
  return sprites.generate(OPTIONS, "train")


def _render_one(shape, scale, angle, x=0.5, y=0.5, size=64):
  factors = {"shape": np.array([shape]), "scale": np.array([scale]),
             "angle": np.array([angle]), "x": np.array([x]), "y": np.array([y])}
  return sprites.render(factors, size)[0, ..., 0].astype(np.float64) / 255


def test_generation_is_deterministic():
  small = dict(OPTIONS, num_train=50)
  first, second = sprites.generate(small, "train"), sprites.generate(small, "train")
  for key in first:
    np.testing.assert_array_equal(first[key], second[key])
  other_seed = sprites.generate(dict(small, seed=1), "train")
  assert not np.array_equal(first["image"], other_seed["image"])
  other_split = sprites.generate(dict(small, num_validation=50), "validation")
  assert not np.array_equal(first["image"], other_split["image"])


def test_factor_distributions_and_label_ranges(train64):
  n = len(train64["shape"])
  shapes = np.bincount(train64["shape"], minlength=3) / n
  scales = np.bincount(train64["scale"], minlength=6) / n
  assert shapes.shape == (3,) and np.all(np.abs(shapes - 1 / 3) < 0.05)
  assert scales.shape == (6,) and np.all(np.abs(scales - 1 / 6) < 0.04)
  for key in ("x", "y"):
    assert 0 <= train64[key].min() and train64[key].max() <= 1
    assert abs(train64[key].mean() - 0.5) < 0.03
  assert 0 <= train64["angle"].min() and train64["angle"].max() < 2 * math.pi
  assert train64["image"].dtype == np.uint8
  assert train64["image"].shape == (n, 64, 64, 1)


def test_orientation_target_uses_symmetry_order(train64):
  k = np.array(sprites.SYMMETRY)[train64["shape"]]
  angle = train64["angle"].astype(np.float64)
  expected = np.stack([np.sin(k * angle), np.cos(k * angle)], -1)
  np.testing.assert_allclose(train64["orientation"], expected, atol=1e-5)


def test_symmetric_turn_gives_same_image_and_target():
  for shape, order in enumerate(sprites.SYMMETRY):
    turn = 2 * math.pi / order
    a, b = _render_one(shape, 5, 0.3), _render_one(shape, 5, 0.3 + turn)
    assert np.abs(a - b).sum() < 0.05 * a.sum(), sprites.SHAPES[shape]
    t = sprites.orientation_target(np.array([shape, shape]), np.array([0.3, 0.3 + turn]))
    np.testing.assert_allclose(t[0], t[1], atol=1e-5)
  heart, turned = _render_one(2, 5, 0.3), _render_one(2, 5, 0.3 + math.pi)
  assert np.abs(heart - turned).sum() > 0.3 * heart.sum()


def test_centroid_matches_position(train64):
  images = train64["image"][..., 0].astype(np.float64)
  centres = np.arange(64) + 0.5
  total = images.sum((1, 2))
  col = (images.sum(1) * centres).sum(1) / total
  row = (images.sum(2) * centres).sum(1) / total
  _, margin = sprites.geometry(64)
  span = 64 - 2 * margin
  np.testing.assert_allclose((col - margin) / span, train64["x"], atol=0.01)
  np.testing.assert_allclose((row - margin) / span, train64["y"], atol=0.01)


def test_larger_scale_lights_more_pixels(train64):
  lit = train64["image"].reshape(len(train64["shape"]), -1).sum(1)
  for shape in range(3):
    means = [lit[(train64["shape"] == shape) & (train64["scale"] == s)].mean()
             for s in range(6)]
    assert np.all(np.diff(means) > 0), (sprites.SHAPES[shape], means)


def test_shapes_are_distinguishable():
  rng = np.random.default_rng(0)
  for _ in range(20):
    scale, angle = rng.integers(0, 6), rng.uniform(0, 2 * math.pi)
    x, y = rng.uniform(size=2)
    images = [_render_one(s, scale, angle, x, y) for s in range(3)]
    for i in range(3):
      for j in range(i + 1, 3):
        # A clear part of the smaller sprite's area differs.
        area = min(images[i].sum(), images[j].sum())
        assert np.abs(images[i] - images[j]).sum() > 0.2 * area


def test_bad_options_raise():
  with pytest.raises(ValueError, match="image_size"):
    sprites.generate(dict(OPTIONS, image_size=8), "train")
  with pytest.raises(ValueError, match="num_test"):
    sprites.generate(dict(OPTIONS, num_test=0), "test")


def test_builder_splits_and_record_contents(sprites_config):
  assert data.input_shape(sprites_config) == (16, 16, 1)
  sizes = {s: data.num_examples(sprites_config, s)
           for s in ("train", "validation", "test")}
  assert sizes == {"train": 96, "validation": 40, "test": 30}
  records = data.get_spec("sprites").load(
      data.base.resolve_options(data.get_spec("sprites"), sprites_config),
      "validation", sprites_config["data_dir"])
  expected = sprites.generate(
      data.base.resolve_options(data.get_spec("sprites"), sprites_config),
      "validation")
  for i in (0, 17, 39):
    np.testing.assert_array_equal(records[i]["image"], expected["image"][i])
    assert records[i]["shape"] == expected["shape"][i]
    np.testing.assert_allclose(records[i]["x"], expected["x"][i])


def _record_files(root):
  found = {}
  for folder, _, files in os.walk(root):
    for name in files:
      if ".array_record" in name:
        with open(os.path.join(folder, name), "rb") as handle:
          found[name] = handle.read()
  return found


def test_same_options_give_byte_identical_records(tmp_path):
  config = {"name": "sprites", "image_size": 16, "num_train": 20,
            "num_validation": 5, "num_test": 5}
  for folder in ("a", "b"):
    data.num_examples(dict(config, data_dir=str(tmp_path / folder)), "train")
  first, second = _record_files(tmp_path / "a"), _record_files(tmp_path / "b")
  assert len(first) == 3 and first == second


def test_options_get_their_own_cache(sprites_config):
  other = dict(sprites_config, num_test=7)
  assert data.num_examples(other, "test") == 7
  assert data.num_examples(sprites_config, "test") == 30
  configs = os.listdir(os.path.join(sprites_config["data_dir"], "sprites"))
  assert any("num_test=7" in c for c in configs)
  assert any("num_test=30" in c for c in configs)


def test_data_dir_from_environment(tmp_path, monkeypatch):
  monkeypatch.setenv("MTL_JAX_DATA_DIR", str(tmp_path))
  assert data.base.data_dir({"name": "sprites"}) == str(tmp_path)
  assert data.base.data_dir({"name": "sprites", "data_dir": "/x"}) == "/x"
  monkeypatch.delenv("MTL_JAX_DATA_DIR")
  assert data.base.data_dir({"name": "sprites", "data_dir": None}).endswith(
      os.path.join(".cache", "mtl_jax", "tensorflow_datasets"))
