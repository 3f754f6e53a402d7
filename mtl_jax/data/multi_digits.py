"""MultiMNIST's recipe applied to scikit-learn's 8x8 handwritten digits.

MultiMNIST (Sener & Koltun 2018) puts a 28x28 digit (left) at rows and columns
0:28 of a 36x36 canvas and a random partner (right) at 6:34, takes the max
where they overlap, and resizes to 28x28 (nearest). Scaled to the 1797 8x8
digits of ``sklearn.datasets.load_digits`` (shipped with scikit-learn, no
download): a 10x10 canvas (36 * 8/28 = 10.3), left at 0:8, right at 2:10
(6 * 8/28 = 1.7), max where they overlap, then nearest resize to 8x8
(``resize=True``; pixel centres aligned, so source rows/columns 0, 1, 3, 4, 5,
6, 8, 9 are kept) or the 10x10 canvas as is (``resize=False``). Intensities
0..16 become uint8 ``round(v * 255 / 16)``.

The source images are split first (``validation_fraction`` and
``test_fraction`` of them, by a seeded permutation), so no source image appears
in two splits; both digits of a composite come from its split. Each source
image is the left digit of ``pairs_per_image`` composites (MultiMNIST uses 1;
the default 5 gives ~6.3k training composites), each time with a random other
image of its split on the right. Tasks ``left``, ``right``: multiclass, 10.
``left_index`` and ``right_index`` record the source images (indices into
``load_digits``).

References:
  Sener, Koltun. Multi-Task Learning as Multi-Objective Optimization. NeurIPS
  2018 (MultiMNIST construction, following Sabour, Frosst, Hinton. Dynamic
  Routing Between Capsules. NeurIPS 2017).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data import base, catalog, embedded
from mtl_jax.validators import at_least

DIGIT_SIZE = 8
CANVAS_SIZE = 10
RIGHT_OFFSET = 2
MAX_INTENSITY = 16
DEFAULTS = {"validation_fraction": 0.1, "test_fraction": 0.2,
            "pairs_per_image": 5, "resize": True, "seed": 0}
_PARTITION_STREAM = len(base.SPLITS)  # seed stream of the source split


@functools.lru_cache(maxsize=1)
def source_digits() -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's digits: images uint8 ``[1797, 8, 8]`` (0..255), labels."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  digits = datasets.load_digits()
  images = np.round(digits.images * (255 / MAX_INTENSITY)).astype(np.uint8)
  return images, digits.target.astype(np.int64)


def compose(left: np.ndarray, right: np.ndarray) -> np.ndarray:
  """``[..., 10, 10]`` canvases: left at 0:8, right at 2:10, max where both."""
  shape = left.shape[:-2] + (CANVAS_SIZE, CANVAS_SIZE)
  canvas_left, canvas_right = np.zeros(shape, left.dtype), np.zeros(shape, right.dtype)
  canvas_left[..., :DIGIT_SIZE, :DIGIT_SIZE] = left
  canvas_right[..., RIGHT_OFFSET:, RIGHT_OFFSET:] = right
  return np.maximum(canvas_left, canvas_right)


def resize_nearest(images: np.ndarray, size: int) -> np.ndarray:
  """Nearest-neighbour resize of the last two axes, pixel centres aligned."""
  source = images.shape[-1]
  keep = np.floor((np.arange(size) + 0.5) * source / size).astype(np.int64)
  return images[..., keep[:, None], keep[None, :]]


def partition(options: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Disjoint source-image indices of each split."""
  n = len(source_digits()[1])
  order = np.random.default_rng([int(options["seed"]), _PARTITION_STREAM]).permutation(n)
  num_test = int(round(n * options["test_fraction"]))
  num_validation = int(round(n * options["validation_fraction"]))
  return {"test": np.sort(order[:num_test]),
          "validation": np.sort(order[num_test:num_test + num_validation]),
          "train": np.sort(order[num_test + num_validation:])}


def _check(options: Mapping[str, Any]) -> None:
  catalog.check_fractions("multi_digits", options,
                          ("validation_fraction", "test_fraction"))
  at_least(options["pairs_per_image"], "multi_digits: pairs_per_image", 1)


def pairs(options: Mapping[str, Any], split: str) -> tuple[np.ndarray, np.ndarray]:
  """Source indices ``(left, right)`` of the composites of ``split``."""
  _check(options)
  pool = partition(options)[split]
  rng = embedded.split_rng(options, split)
  position = rng.permutation(np.repeat(np.arange(len(pool)), options["pairs_per_image"]))
  # A partner at a random non-zero offset in the pool: never the image itself.
  offset = rng.integers(1, len(pool), len(position))
  return pool[position], pool[(position + offset) % len(pool)]


def generate(options: Mapping[str, Any], split: str) -> dict[str, np.ndarray]:
  """All examples of ``split`` as arrays (what the builder writes)."""
  images, labels = source_digits()
  left, right = pairs(options, split)
  canvas = compose(images[left], images[right])
  if options["resize"]:
    canvas = resize_nearest(canvas, DIGIT_SIZE)
  return {"image": canvas[..., None], "left": labels[left],
          "right": labels[right], "left_index": left.astype(np.int32),
          "right_index": right.astype(np.int32)}


def image_size(options: Mapping[str, Any]) -> int:
  return DIGIT_SIZE if options["resize"] else CANVAS_SIZE


def features(options: Mapping[str, Any]) -> dict[str, Any]:
  """The TFDS features of a record."""
  index = tfds.features.Scalar(dtype=np.int32)
  return {"image": embedded.image_feature(image_size(options)),
          "left": tfds.features.ClassLabel(num_classes=10),
          "right": tfds.features.ClassLabel(num_classes=10),
          "left_index": index,
          "right_index": index}


class MultiDigits(embedded.Builder, skip_registration=True):
  """MultiMNIST-style composites of scikit-learn's 8x8 digits."""

  name = "multi_digits"
  VERSION = tfds.core.Version("1.0.0")
  generate, features = staticmethod(generate), staticmethod(features)


def tasks(options: Mapping[str, Any]) -> dict[str, dict]:
  """The tasks ``left`` and ``right``: which digit, 10 classes each."""
  del options
  spec = {"kind": "multiclass", "num_classes": 10, "metrics": ("accuracy",)}
  return {"left": dict(spec), "right": dict(spec)}


def input_shape(options: Mapping[str, Any]) -> tuple[int, int, int]:
  size = image_size(options)
  return (size, size, 1)


DATASET = base.DatasetSpec(
    name="multi_digits",
    defaults=DEFAULTS,
    tasks=tasks,
    input_shape=input_shape,
    load=base.tfds_loader(MultiDigits),
    in_memory=True,
)
