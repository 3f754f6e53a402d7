"""Cityscapes (7- or 19-class segmentation and depth) from the MTAN release.

The Cityscapes benchmark of the multi-task literature (MTAN, Nash-MTL, FAMO,
FairGrad, LibMTL): the 2975 training and 500 validation images of Cordts et
al. 2016 (the validation images are the papers' test set) at 128 x 256, as
preprocessed by Liu et al. for the MTAN code. Files (see
:mod:`mtl_jax.data.mtan_release`)::

  <root>/train/image/<i>.npy      float [128, 256, 3] in [0, 1]
  <root>/train/label_7/<i>.npy    float [128, 256], 0..6, -1 = no label
  <root>/train/label_19/<i>.npy   (only for num_classes=19) 0..18, -1 = no label
  <root>/train/depth/<i>.npy      float [128, 256, 1], 0 = no depth
  <root>/val/...                  the 500 test images

The 7-class labels are read from ``label_7/`` (the MTAN release) or, when
there is none, ``label/`` (LibMTL's ``cityscapes2`` copy of the same data).
``<root>`` is ``config.data.path``, else ``<data_dir>/cityscapes``.

Tasks (record fields): ``segmentation`` (7 classes by default, ignore label
-1) and ``depth``; inputs ``[height, width, 3]``.

Options:
  path: the release's directory (default ``<data_dir>/cityscapes``).
  num_classes: 7 (the benchmark) or 19 (``label_19/``).
  height, width: the files' image size (128 x 256), checked for every file.
  validation_fraction, split_file, seed: carve ``validation`` out of
    ``train/`` (default: ``validation`` is the test folder ``val/``; see
    :mod:`mtl_jax.data.mtan_release`).

Not done: the optional random scale crop and flip augmentation.

References:
  Cordts et al. The Cityscapes Dataset for Semantic Urban Scene
  Understanding. CVPR 2016.
  Liu, Johns, Davison. End-to-End Multi-Task Learning with Attention. CVPR
  2019 (https://github.com/lorenmt/mtan).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from mtl_jax.data import catalog, files, mtan_release

NAME = "cityscapes"
HEIGHT, WIDTH = 128, 256
NUM_TRAIN, NUM_TEST = 2975, 500
# num_classes -> label folders to try, in order
LABEL_FOLDERS = {7: ("label_7", "label"), 19: ("label_19",)}

DEFAULTS = {"path": None, "num_classes": 7, "height": HEIGHT, "width": WIDTH,
            "validation_fraction": 0.0, "split_file": None, "seed": 0}


def _num_classes(options: Mapping[str, Any]) -> int:
  n = options["num_classes"]
  if n not in LABEL_FOLDERS:
    raise ValueError(f"Dataset {NAME!r}: num_classes must be one of "
                     f"{sorted(LABEL_FOLDERS)}, got {n!r}.")
  return int(n)


def _shape(options: Mapping[str, Any]) -> tuple[int, int]:
  return int(options["height"]), int(options["width"])


def tasks(options: Mapping[str, Any]) -> dict[str, dict]:
  """``segmentation`` (``num_classes``) and ``depth`` at the image size."""
  shape = _shape(options)
  return {"segmentation": catalog.segmentation(_num_classes(options), shape=shape),
          "depth": catalog.depth(shape=shape)}


def input_shape(options: Mapping[str, Any]) -> tuple[int, int, int]:
  return _shape(options) + (3,)


def fields(options: Mapping[str, Any], data_dir: str) -> dict[str, str]:
  """``{record field: release folder}``; the label folder is the first of
  :data:`LABEL_FOLDERS` present in ``train/`` (the first one if none is)."""
  candidates = LABEL_FOLDERS[_num_classes(options)]
  train = os.path.join(files.dataset_root(NAME, options, data_dir), "train")
  label = next((c for c in candidates if os.path.isdir(os.path.join(train, c))),
               candidates[0])
  return {"image": "image", "segmentation": label, "depth": "depth"}


def load(options: Mapping[str, Any], split: str, data_dir: str):
  """The records of ``split`` (see the module docstring)."""
  h, w = _shape(options)
  converters = {"image": mtan_release.image_converter(h, w),
                "segmentation": mtan_release.label_converter(h, w),
                "depth": mtan_release.depth_converter(h, w)}
  return mtan_release.load(NAME, options, split, data_dir,
                           fields(options, data_dir), converters)


def check(options: Mapping[str, Any], data_dir: str) -> None:
  """Raises ``MissingDataError`` naming a missing folder of the release."""
  mtan_release.check(NAME, options, data_dir, fields(options, data_dir))


CITYSCAPES = files.FileDatasetSpec(
    name=NAME, defaults=DEFAULTS, tasks=tasks, input_shape=input_shape,
    load=load, check=check)
