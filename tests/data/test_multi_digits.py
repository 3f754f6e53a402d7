"""MultiMNIST-style composites of scikit-learn's digits."""

import numpy as np
import pytest

from mtl_jax import data
from mtl_jax.data import multi_digits

OPTIONS = dict(multi_digits.DEFAULTS, pairs_per_image=2)


def test_compose_takes_the_max_where_digits_overlap():
  left = np.full((8, 8), 10, np.uint8)
  right = np.full((8, 8), 20, np.uint8)
  right[0, 0] = 5  # at canvas (2, 2), inside the overlap
  canvas = multi_digits.compose(left, right)
  assert canvas.shape == (10, 10)
  assert (canvas[:2, :8] == 10).all() and (canvas[:8, :2] == 10).all()
  assert (canvas[8:, 2:] == 20).all() and (canvas[2:, 8:] == 20).all()
  assert canvas[2, 2] == 10  # max(10, 5)
  assert (canvas[3:8, 3:8] == 20).all()  # max(10, 20)
  assert canvas[0, 9] == 0 and canvas[9, 0] == 0  # neither digit


def test_resize_keeps_pixel_centred_rows():
  canvas = np.arange(100).reshape(10, 10)
  small = multi_digits.resize_nearest(canvas, 8)
  kept = [0, 1, 3, 4, 5, 6, 8, 9]
  np.testing.assert_array_equal(small, canvas[np.ix_(kept, kept)])


def test_splits_use_disjoint_source_images():
  used = {}
  for split in ("train", "validation", "test"):
    left, right = multi_digits.pairs(OPTIONS, split)
    assert not np.any(left == right)
    used[split] = set(left) | set(right)
  assert not used["train"] & used["validation"]
  assert not used["train"] & used["test"]
  assert not used["validation"] & used["test"]
  assert sum(len(s) for s in used.values()) == 1797
  left, _ = multi_digits.pairs(OPTIONS, "train")
  assert np.all(np.bincount(left)[left] == 2)  # each image is left twice


def test_images_and_labels_follow_the_recipe():
  images, labels = multi_digits.source_digits()
  arrays = multi_digits.generate(OPTIONS, "test")
  left, right = arrays["left_index"], arrays["right_index"]
  np.testing.assert_array_equal(arrays["left"], labels[left])
  np.testing.assert_array_equal(arrays["right"], labels[right])
  expected = multi_digits.resize_nearest(
      np.maximum(np.pad(images[left], ((0, 0), (0, 2), (0, 2))),
                 np.pad(images[right], ((0, 0), (2, 0), (2, 0)))), 8)
  np.testing.assert_array_equal(arrays["image"][..., 0], expected)
  wide = multi_digits.generate(dict(OPTIONS, resize=False), "test")
  assert wide["image"].shape[1:] == (10, 10, 1)


def test_builder_batches(data_dir):
  config = {"name": "multi_digits", "data_dir": data_dir, "pairs_per_image": 1}
  assert data.input_shape(config) == (8, 8, 1)
  assert sorted(data.dataset_tasks(config)) == ["left", "right"]
  sizes = [data.num_examples(config, s) for s in ("train", "validation", "test")]
  assert sizes == [1258, 180, 359]
  batch = next(data.build(config, "test", batch_size=32, seed=0, shuffle=True,
                          drop_remainder=True))
  assert batch["inputs"].shape == (32, 8, 8, 1)
  assert batch["targets"]["left"].dtype == np.int32
  assert batch["targets"]["right"].max() <= 9


def test_bad_fractions_raise():
  with pytest.raises(ValueError, match="fraction"):
    multi_digits.pairs(dict(OPTIONS, test_fraction=0.95), "train")
