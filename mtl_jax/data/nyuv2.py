"""NYUv2 (13-class segmentation, depth, surface normals) from the MTAN release.

The NYUv2 benchmark of the multi-task literature (MTAN, Nash-MTL, FAMO,
FairGrad, LibMTL): 795 training and 654 test images of indoor scenes at
288 x 384 (Silberman et al. 2012, with the 13-class labels of Couprie et al.
2013 and the normals of Eigen and Fergus 2015), as preprocessed by Liu et al.
for the MTAN code. Files (see :mod:`mtl_jax.data.mtan_release`)::

  <root>/train/image/<i>.npy    float [288, 384, 3] in [0, 1]
  <root>/train/label/<i>.npy    float [288, 384], 0..12, -1 = no label
  <root>/train/depth/<i>.npy    float [288, 384, 1], 0 = no depth
  <root>/train/normal/<i>.npy   float [288, 384, 3], 0 = no normal
  <root>/val/...                the 654 test images

``<root>`` is ``config.data.path``, else ``<data_dir>/nyuv2``.

Tasks (record fields): ``segmentation`` (13 classes, ignore label -1),
``depth`` and ``normals``; inputs ``[height, width, 3]``.

Options:
  path: the release's directory (default ``<data_dir>/nyuv2``).
  height, width: the files' image size (288 x 384); every file is checked
    against it (an error names the file); nothing is resized.
  validation_fraction, split_file, seed: carve ``validation`` out of
    ``train/`` (default: ``validation`` is the test folder ``val/``, as in the
    papers; see :mod:`mtl_jax.data.mtan_release`).

Records are read file by file (``in_memory`` is False by default; set
``config.data.in_memory=True`` to hold a split in memory: about 2.8 GB for
``train`` as float32).

Not done: LibMTL's optional augmentation (random scale crop, flips); the
published results of Protocol A use none.

Example::

  config.data = dict(name="nyuv2", path="/data/nyuv2")
  config.tasks = dict(
      segmentation=dict(kind="segmentation", num_classes=13, ignore_label=-1),
      depth=dict(kind="depth"), normals=dict(kind="normals"))

References:
  Silberman, Hoiem, Kohli, Fergus. Indoor Segmentation and Support Inference
  from RGBD Images. ECCV 2012.
  Liu, Johns, Davison. End-to-End Multi-Task Learning with Attention. CVPR
  2019 (https://github.com/lorenmt/mtan, ``im2im_pred/create_dataset.py``).
"""

from __future__ import annotations

from typing import Any, Mapping

from mtl_jax.data import catalog, files, mtan_release

NAME = "nyuv2"
NUM_CLASSES = 13
HEIGHT, WIDTH = 288, 384
NUM_TRAIN, NUM_TEST = 795, 654
# record field -> release folder
FIELDS = {"image": "image", "segmentation": "label", "depth": "depth",
          "normals": "normal"}

DEFAULTS = {"path": None, "height": HEIGHT, "width": WIDTH,
            "validation_fraction": 0.0, "split_file": None, "seed": 0}


def _shape(options: Mapping[str, Any]) -> tuple[int, int]:
  return int(options["height"]), int(options["width"])


def tasks(options: Mapping[str, Any]) -> dict[str, dict]:
  """``segmentation`` (13 classes), ``depth`` and ``normals`` at the image size."""
  shape = _shape(options)
  return {"segmentation": catalog.segmentation(NUM_CLASSES, shape=shape),
          "depth": catalog.depth(shape=shape),
          "normals": catalog.normals(shape=shape)}


def input_shape(options: Mapping[str, Any]) -> tuple[int, int, int]:
  return _shape(options) + (3,)


def _converters(options: Mapping[str, Any]) -> dict:
  h, w = _shape(options)
  return {"image": mtan_release.image_converter(h, w),
          "segmentation": mtan_release.label_converter(h, w),
          "depth": mtan_release.depth_converter(h, w),
          "normals": mtan_release.normals_converter(h, w)}


def load(options: Mapping[str, Any], split: str, data_dir: str):
  """The records of ``split`` (see the module docstring)."""
  return mtan_release.load(NAME, options, split, data_dir, FIELDS,
                           _converters(options))


def check(options: Mapping[str, Any], data_dir: str) -> None:
  """Raises ``MissingDataError`` naming a missing folder of the release."""
  mtan_release.check(NAME, options, data_dir, FIELDS)


NYUV2 = files.FileDatasetSpec(
    name=NAME, defaults=DEFAULTS, tasks=tasks, input_shape=input_shape,
    load=load, check=check)
