"""Procedural dSprites-style sprites: one white shape on a black square image.

Each image shows one shape with five independent factors, drawn uniformly:

* ``shape``: square, ellipse or heart (multiclass, 3 classes);
* ``scale``: one of 6 sizes, linearly spaced from 0.5 to 1 of the largest
  (multiclass, 6 classes);
* ``angle``: rotation in [0, 2 pi) (radians, clockwise on screen);
* ``x``, ``y``: the position of the shape's centroid, in [0, 1] over the range
  where the largest shape at any angle stays inside the image (x to the right,
  y downward; regression, dim 1).

The ``orientation`` task regresses ``(sin(k * angle), cos(k * angle))`` where
``k`` is the shape's rotational symmetry order (square 4, ellipse 2, heart 1):
a square turned by 90 degrees is the same image, so only ``4 * angle`` (mod
2 pi) can be read from it. With this target the orientation is a function of
the image for every shape.

Images are ``image_size`` x ``image_size`` x 1 uint8 (scaled to [0, 1] by the
pipeline); with ``antialias`` each pixel averages 2 x 2 samples. The largest
shape fits in a disk of radius ``0.15 * image_size``. Rendering is vectorised
numpy over a small window around each sprite; generation is deterministic:
split ``s`` draws its factors from ``SeedSequence([seed, index of s])``.

References:
  Matthey, Higgins, Hassabis, Lerchner. dSprites: Disentanglement testing
  Sprites dataset, 2017. https://github.com/deepmind/dsprites-dataset
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data import base, embedded
from mtl_jax.validators import at_least

SHAPES = ("square", "ellipse", "heart")
SYMMETRY = (4, 2, 1)  # rotational symmetry order of each shape
SCALES = np.linspace(0.5, 1.0, 6)
HALF_SIZE = 0.15  # radius of the largest sprite, as a fraction of the image side
SUPERSAMPLE = 2  # samples per pixel side when antialiasing
_CHUNK = 1024  # sprites rendered per vectorised step
MIN_IMAGE_SIZE = 16

# The heart (x^2 + y^2 - 1)^3 = x^2 y^3, shifted so that its area centroid is
# the origin and scaled so that it fits in the unit disk (numerically: centroid
# y = 0.2935, farthest point 1.2935 from it).
_HEART_CENTROID_Y = 0.2935
_HEART_RADIUS = 1.2935

DEFAULTS = {"image_size": 64, "num_train": 8000, "num_validation": 1000,
            "num_test": 1000, "seed": 0, "antialias": True}


def _square(u, v):
  return np.maximum(np.abs(u), np.abs(v)) <= 0.7


def _ellipse(u, v):
  return u * u + 4.0 * v * v <= 1.0


def _heart(u, v):
  hx = u * _HEART_RADIUS
  hy = _HEART_CENTROID_Y - v * _HEART_RADIUS  # image rows point down
  q = hx * hx + hy * hy - 1.0
  return q * q * q <= hx * hx * hy * hy * hy


_INSIDE = (_square, _ellipse, _heart)  # unit-disk shapes, u right, v down


def sample_factors(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
  """``n`` independent uniform draws of the factors."""
  return {"shape": rng.integers(0, len(SHAPES), n),
          "scale": rng.integers(0, len(SCALES), n),
          "angle": rng.uniform(0.0, 2 * math.pi, n),
          "x": rng.uniform(0.0, 1.0, n),
          "y": rng.uniform(0.0, 1.0, n)}


def orientation_target(shape: np.ndarray, angle: np.ndarray) -> np.ndarray:
  """``(sin(k angle), cos(k angle))`` ``[n, 2]`` with k the shape's symmetry."""
  k = np.asarray(SYMMETRY)[shape] * angle
  return np.stack([np.sin(k), np.cos(k)], axis=-1).astype(np.float32)


def geometry(image_size: int) -> tuple[float, float]:
  """``(radius, margin)`` in pixels: largest sprite radius, centre margin."""
  radius = HALF_SIZE * image_size
  return radius, radius + 1.0


def centre_pixels(pos: np.ndarray, image_size: int) -> np.ndarray:
  """Position factor in [0, 1] -> centre in pixel units (pixel i spans [i, i+1))."""
  _, margin = geometry(image_size)
  return margin + pos * (image_size - 2 * margin)


def _render_group(inside, f, cx, cy, ox, oy, window, radius, ss):
  """Coverage ``[n, window, window]`` in [0, 1] of one shape's sprites."""
  col = lambda a: a.astype(np.float32)[:, None, None]
  grid = (np.arange(window * ss, dtype=np.float32) + 0.5) / ss
  r = col(SCALES[f["scale"]] * radius)
  cos, sin = col(np.cos(f["angle"])), col(np.sin(f["angle"]))
  dx = (grid[None, None, :] - col(cx - ox)) / r
  dy = (grid[None, :, None] - col(cy - oy)) / r
  hits = inside(cos * dx + sin * dy, cos * dy - sin * dx)
  hits = hits.reshape(-1, window, ss, window, ss).sum(axis=(2, 4), dtype=np.int32)
  return hits.astype(np.float32) / (ss * ss)


def render(factors: Mapping[str, np.ndarray], image_size: int,
           antialias: bool = True) -> np.ndarray:
  """Images ``[n, image_size, image_size, 1]`` uint8 of the given factors."""
  n, ss = len(factors["shape"]), SUPERSAMPLE if antialias else 1
  radius, _ = geometry(image_size)
  window = int(math.ceil(2 * radius)) + 3
  cx, cy = centre_pixels(factors["x"], image_size), centre_pixels(factors["y"], image_size)
  ox = np.clip(np.floor(cx - window / 2).astype(np.int64), 0, image_size - window)
  oy = np.clip(np.floor(cy - window / 2).astype(np.int64), 0, image_size - window)
  images = np.zeros((n, image_size, image_size), np.uint8)
  for k, inside in enumerate(_INSIDE):
    ids = np.flatnonzero(factors["shape"] == k)
    for start in range(0, len(ids), _CHUNK):
      i = ids[start:start + _CHUNK]
      f = {key: value[i] for key, value in factors.items()}
      cover = _render_group(inside, f, cx[i], cy[i], ox[i], oy[i], window,
                            radius, ss)
      rows = oy[i][:, None] + np.arange(window)
      cols = ox[i][:, None] + np.arange(window)
      images[i[:, None, None], rows[:, :, None], cols[:, None, :]] = np.round(
          cover * 255).astype(np.uint8)
  return images[..., None]


def split_size(options: Mapping[str, Any], split: str) -> int:
  return int(options[f"num_{split}"])


def _check(options: Mapping[str, Any]) -> None:
  at_least(options["image_size"], "sprites: image_size", MIN_IMAGE_SIZE)
  embedded.check_split_sizes("sprites", options)


def generate(options: Mapping[str, Any], split: str) -> dict[str, np.ndarray]:
  """All examples of ``split`` as arrays (what the builder writes)."""
  _check(options)
  factors = sample_factors(embedded.split_rng(options, split),
                           split_size(options, split))
  return {"image": render(factors, options["image_size"], options["antialias"]),
          "shape": factors["shape"], "scale": factors["scale"],
          "angle": factors["angle"].astype(np.float32),
          "orientation": orientation_target(factors["shape"], factors["angle"]),
          "x": factors["x"].astype(np.float32),
          "y": factors["y"].astype(np.float32)}


def features(options: Mapping[str, Any]) -> dict[str, Any]:
  """The TFDS features of a record."""
  scalar = tfds.features.Scalar(dtype=np.float32)
  return {"image": embedded.image_feature(options["image_size"]),
          "shape": tfds.features.ClassLabel(names=SHAPES),
          "scale": tfds.features.ClassLabel(num_classes=len(SCALES)),
          "angle": scalar,
          "orientation": tfds.features.Tensor(shape=(2,), dtype=np.float32),
          "x": scalar,
          "y": scalar}


class Sprites(embedded.Builder, skip_registration=True):
  """Procedural dSprites-style sprites: one white shape, five factors."""

  name = "sprites"
  VERSION = tfds.core.Version("1.0.0")
  generate, features = staticmethod(generate), staticmethod(features)


def tasks(options: Mapping[str, Any]) -> dict[str, dict]:
  """The natural tasks of the sprites."""
  del options
  regression = ("mae", "r2")
  return {
      "shape": {"kind": "multiclass", "num_classes": len(SHAPES),
                "metrics": ("accuracy",)},
      "scale": {"kind": "multiclass", "num_classes": len(SCALES),
                "metrics": ("accuracy",)},
      "orientation": {"kind": "regression", "dim": 2, "metrics": regression},
      "x": {"kind": "regression", "dim": 1, "metrics": regression},
      "y": {"kind": "regression", "dim": 1, "metrics": regression},
  }


def input_shape(options: Mapping[str, Any]) -> tuple[int, int, int]:
  return (options["image_size"], options["image_size"], 1)


DATASET = base.DatasetSpec(
    name="sprites",
    defaults=DEFAULTS,
    tasks=tasks,
    input_shape=input_shape,
    load=base.tfds_loader(Sprites),
    in_memory=True,
)
