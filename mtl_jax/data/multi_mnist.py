"""MultiMNIST and MultiFashion: two overlapping digits (or garments) per image.

The MultiMNIST recipe (Sener & Koltun 2018) on TFDS ``mnist`` (dataset
``multi_mnist``) or ``fashion_mnist`` (``multi_fashion``): each source image
is the left item of ``pairs_per_image`` composites (the recipe uses 1), each
time with a random other image of its split on the right. The left image goes
to rows and columns 0:28 of a 36x36 canvas, the right one to 6:34; where they
overlap the pixel is the max of the two; the canvas is resized to 28x28 by
nearest neighbour (pixel centres aligned: canvas rows/columns
``floor((i + 0.5) * 36 / 28)``), or kept at 36x36 with ``resize=False``.
Tasks ``left`` and ``right``: the classes of the two items (multiclass, 10).

Splits: ``test`` pairs the images of TFDS ``test``; ``train`` and
``validation`` pair disjoint parts of TFDS ``train`` (``validation_fraction``
of it, drawn by a permutation from ``seed``), so no source image is in two
splits. The pairing is drawn from ``SeedSequence([seed, index of split])``:
deterministic. ``left_index`` and ``right_index`` record the source rows
(indices into the TFDS split). Composites are made as batches are read (and
held in memory by default: 54k x 28 x 28 bytes).

The TFDS data must be prepared under ``data_dir`` (or ``download=True``): see
:mod:`mtl_jax.data.catalog`.

References:
  Sener, Koltun. Multi-Task Learning as Multi-Objective Optimization. NeurIPS
  2018 (MultiMNIST construction, following Sabour, Frosst, Hinton. Dynamic
  Routing Between Capsules. NeurIPS 2017).
  Xiao, Rasul, Vollgraf. Fashion-MNIST, 2017. arXiv:1708.07747.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from mtl_jax.data import base, catalog
from mtl_jax.data.multi_digits import resize_nearest
from mtl_jax.validators import at_least

DIGIT_SIZE = 28
CANVAS_SIZE = 36
RIGHT_OFFSET = 6
DEFAULTS = {"validation_fraction": 0.1, "pairs_per_image": 1, "resize": True,
            "seed": 0, "download": False}


def compose(left: np.ndarray, right: np.ndarray) -> np.ndarray:
  """``[..., 36, 36]`` canvases: left at 0:28, right at 6:34, max where both."""
  shape = left.shape[:-2] + (CANVAS_SIZE, CANVAS_SIZE)
  canvas_left, canvas_right = np.zeros(shape, left.dtype), np.zeros(shape, right.dtype)
  end = RIGHT_OFFSET + DIGIT_SIZE
  canvas_left[..., :DIGIT_SIZE, :DIGIT_SIZE] = left
  canvas_right[..., RIGHT_OFFSET:end, RIGHT_OFFSET:end] = right
  return np.maximum(canvas_left, canvas_right)


def make_images(left: np.ndarray, right: np.ndarray, resize: bool) -> np.ndarray:
  """Composites ``[b, s, s, 1]`` of ``[b, 28, 28(, 1)]`` left/right images."""
  canvas = compose(left.reshape(-1, DIGIT_SIZE, DIGIT_SIZE),
                   right.reshape(-1, DIGIT_SIZE, DIGIT_SIZE))
  if resize:
    canvas = resize_nearest(canvas, DIGIT_SIZE)
  return canvas[..., None]


def pairs(pool: np.ndarray, options: Mapping[str, Any], split: str) -> np.ndarray:
  """``[n, 2]`` source rows ``(left, right)`` of the composites of ``split``.

  Each row of ``pool`` is the left image ``pairs_per_image`` times, in a
  random order, with a partner at a random non-zero offset in the pool (never
  itself).
  """
  if len(pool) < 2:
    raise ValueError(f"Split {split!r} has {len(pool)} source image(s); pairing "
                     "needs at least 2.")
  rng = np.random.default_rng([int(options["seed"]), base.SPLITS.index(split)])
  position = rng.permutation(np.repeat(np.arange(len(pool)), options["pairs_per_image"]))
  offset = rng.integers(1, len(pool), len(position))
  return np.stack([pool[position], pool[(position + offset) % len(pool)]], axis=1)


def source_pool(num_source: int, options: Mapping[str, Any], split: str) -> np.ndarray:
  """The source rows ``split`` pairs, of the TFDS split it reads (``test`` for
  ``test``, else ``train``, which has ``num_source`` rows)."""
  if split == "test":
    return np.arange(num_source)
  return catalog.carve(num_source, options["seed"], options["validation_fraction"])[split]


def _transform(options: Mapping[str, Any]):
  def transform(rows):
    images = np.stack([np.asarray(r["image"], np.uint8) for r in rows])
    labels = catalog.column(rows, "label", np.int64)
    return {"image": make_images(images[0::2], images[1::2], options["resize"]),
            "left": labels[0::2], "right": labels[1::2]}
  return transform


class _Composites(catalog.View):
  """A :class:`catalog.View` that also records the source rows."""

  def __getitems__(self, keys):
    records = super().__getitems__(keys)
    rows = self.indices[np.asarray(keys, np.int64)]
    for record, (left, right) in zip(records, rows):
      record["left_index"], record["right_index"] = np.int32(left), np.int32(right)
    return records


def _check(dataset: str, options: Mapping[str, Any]) -> None:
  catalog.check_fractions(dataset, options, ("validation_fraction",))
  at_least(options["pairs_per_image"], f"{dataset}: pairs_per_image", 1)


def _load(dataset: str):
  tfds_name = catalog.tfds_name(dataset)

  def load(options, split, root):
    _check(dataset, options)
    tfds_split = "test" if split == "test" else "train"
    source = catalog.open_split(dataset, tfds_name, tfds_split, root, options["download"])
    pool = source_pool(len(source), options, split)
    return _Composites(source, pairs(pool, options, split), _transform(options))

  return load


def tasks(options: Mapping[str, Any]) -> dict[str, dict]:
  """The tasks ``left`` and ``right``: which class, 10 each."""
  del options
  return {"left": catalog.multiclass(10), "right": catalog.multiclass(10)}


def input_shape(options: Mapping[str, Any]) -> tuple[int, int, int]:
  size = DIGIT_SIZE if options["resize"] else CANVAS_SIZE
  return (size, size, 1)


def _spec(dataset: str) -> base.DatasetSpec:
  return base.DatasetSpec(name=dataset, defaults=DEFAULTS, tasks=tasks,
                          input_shape=input_shape, load=_load(dataset),
                          in_memory=True)


MULTI_MNIST = _spec("multi_mnist")
MULTI_FASHION = _spec("multi_fashion")
