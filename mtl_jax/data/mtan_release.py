"""The preprocessed ``.npy`` releases of the MTAN code (NYUv2, Cityscapes).

Liu, Johns and Davison released NYUv2 and Cityscapes for their MTAN code as
one ``.npy`` file per example and field; LibMTL, Nash-MTL, FAMO and FairGrad
read the same files::

  <root>/train/image/0.npy ... <n-1>.npy    float [H, W, 3], RGB in [0, 1]
  <root>/train/<label folder>/<i>.npy       float [H, W], class index, -1 = no label
  <root>/train/depth/<i>.npy                float [H, W, 1], 0 = no depth
  <root>/train/normal/<i>.npy               float [H, W, 3] (NYUv2 only), 0 = none
  <root>/val/...                            the same for the evaluation images

The authors' loaders (``im2im_pred/create_dataset.py`` of lorenmt/mtan,
``examples/{nyu,cityscapes}/create_dataset.py`` of LibMTL) move the channel
axis first for PyTorch; we keep the files' channels-last layout, which is our
batch format. Records: ``image`` float32 ``[H, W, 3]`` (uint8 files are kept
as uint8 and scaled to [0, 1] by the pipeline), ``segmentation`` int32
``[H, W]`` (-1 = ignore), ``depth`` float32 ``[H, W]`` (0 = missing) and
``normals`` float32 ``[H, W, 3]`` (all zero = missing). Every file's shape is
checked against the options ``height`` x ``width`` (the release's size by
default) with an error naming the file; nothing is resized. The task
declarations are :func:`mtl_jax.data.catalog.segmentation`, ``depth`` and
``normals`` with ``shape=(height, width)``.

Splits: ``train`` is the ``train/`` folder and ``test`` the ``val/`` folder
(the papers' test set). The releases have no validation set, and the papers
that report a "validation" epoch (LibMTL, Protocol B of PUBLISHED.md) select
it on this same folder, so by default ``validation`` is the ``val/`` folder
too. Two options carve a validation set out of ``train/`` instead (the
images left for ``train`` then exclude it):

* ``validation_fraction`` > 0: that fraction of ``train/``, drawn by a
  permutation seeded with ``seed`` (:func:`mtl_jax.data.catalog.carve`);
* ``split_file``: a JSON file ``{"train": [i, ...], "val": [i, ...]}`` of
  ``train/`` file numbers, the format of LibMTL's ``examples/nyu/data_split.json``
  (636 / 159 images of NYUv2).

Not done: the optional training augmentation of LibMTL and the MTAN
repository (random scale crop with scales 1.0 / 1.2 / 1.5, depth divided by
the scale, and horizontal flips negating the normals' x component). The MTAN
paper and the Nash-MTL / FAMO results (Protocol A) use no augmentation.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Mapping

import numpy as np

from mtl_jax.data import catalog, files


def _check_shape(array: np.ndarray, expected: tuple, path: str) -> None:
  if array.shape != expected:
    raise ValueError(f"{path}: shape {array.shape}, expected {expected} (the "
                     "options height x width must be the files' size).")


def image_converter(height: int, width: int) -> Callable:
  """``(array, path) -> image``: ``[H, W, 3]`` float32 (uint8 kept)."""
  def convert(array, path):
    _check_shape(array, (height, width, 3), path)
    if array.dtype == np.uint8:
      return array
    if array.dtype.kind != "f":
      raise TypeError(f"{path}: image dtype {array.dtype}, expected float or uint8.")
    return array.astype(np.float32)
  return convert


def label_converter(height: int, width: int) -> Callable:
  """``(array, path) -> labels``: ``[H, W]`` int32, -1 = ignore.

  The releases store labels as floats; a non-integer value is an error.
  """
  def convert(array, path):
    array = np.squeeze(array, -1) if array.ndim == 3 and array.shape[-1] == 1 else array
    _check_shape(array, (height, width), path)
    if array.dtype.kind == "f":
      if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
        raise ValueError(f"{path}: labels must be integers (-1 = no label).")
    elif array.dtype.kind not in "iu":
      raise TypeError(f"{path}: label dtype {array.dtype}, expected float or int.")
    return array.astype(np.int32)
  return convert


def depth_converter(height: int, width: int) -> Callable:
  """``(array, path) -> depth``: ``[H, W]`` float32 from ``[H, W, 1]`` or ``[H, W]``."""
  def convert(array, path):
    array = np.squeeze(array, -1) if array.ndim == 3 and array.shape[-1] == 1 else array
    _check_shape(array, (height, width), path)
    return array.astype(np.float32)
  return convert


def normals_converter(height: int, width: int) -> Callable:
  """``(array, path) -> normals``: ``[H, W, 3]`` float32."""
  def convert(array, path):
    _check_shape(array, (height, width, 3), path)
    return array.astype(np.float32)
  return convert


def carves_validation(options: Mapping[str, Any]) -> bool:
  """Whether ``validation`` is carved out of ``train/`` (else it is ``val/``)."""
  return float(options["validation_fraction"]) > 0 or bool(options["split_file"])


def folder(root: str, split: str, options: Mapping[str, Any]) -> str:
  """The release folder read for ``split``: ``train/`` or ``val/``."""
  from_train = split == "train" or (split == "validation"
                                    and carves_validation(options))
  return os.path.join(root, "train" if from_train else "val")


def _split_file(path: str, dataset: str) -> dict[str, list[int]]:
  path = os.path.abspath(os.path.expanduser(str(path)))
  if not os.path.isfile(path):
    raise files.MissingDataError(
        f"Dataset {dataset!r}: split_file {path} is missing (a JSON file "
        '{"train": [...], "val": [...]} of train/ file numbers, as LibMTL\'s '
        f"examples/nyu/data_split.json); see {files.README_SECTION}.")
  with open(path) as f:
    parts = json.load(f)
  if not isinstance(parts, dict) or not {"train", "val"} <= set(parts):
    raise ValueError(f"Dataset {dataset!r}: split_file {path} must hold a JSON "
                     'object with lists "train" and "val".')
  return {"train": [int(i) for i in parts["train"]],
          "validation": [int(i) for i in parts["val"]]}


def indices(dataset: str, options: Mapping[str, Any], split: str,
            count: int) -> np.ndarray:
  """The file numbers of ``split`` in its folder of ``count`` files.

  Raises:
    ValueError: ``validation_fraction`` outside [0, 1) or together with
      ``split_file``; a split file naming a file number >= ``count`` or the
      same number in both parts.
  """
  fraction = float(options["validation_fraction"])
  if not 0.0 <= fraction < 1.0:
    raise ValueError(f"Dataset {dataset!r}: validation_fraction must be in [0, 1), "
                     f"got {fraction}.")
  if fraction > 0 and options["split_file"]:
    raise ValueError(f"Dataset {dataset!r}: set validation_fraction or split_file, "
                     "not both.")
  if split == "test" or not carves_validation(options):
    return np.arange(count)
  if options["split_file"]:
    parts = _split_file(options["split_file"], dataset)
    numbers = parts["train"] + parts["validation"]
    if max(numbers, default=-1) >= count or min(numbers, default=0) < 0:
      raise ValueError(f"Dataset {dataset!r}: split_file names file numbers "
                       f"outside 0 .. {count - 1} of train/.")
    if set(parts["train"]) & set(parts["validation"]):
      raise ValueError(f"Dataset {dataset!r}: split_file puts the same train/ "
                       "file in both 'train' and 'val'.")
    return np.asarray(parts[split], np.int64)
  return catalog.carve(count, int(options["seed"]), fraction)[split]


def layout(fields: Mapping[str, str]) -> str:
  """The expected layout, for error messages."""
  names = ",".join(fields.values())
  return (f"<root>/train/{{{names}}}/<i>.npy and <root>/val/{{{names}}}/<i>.npy "
          "(the preprocessed .npy release of the MTAN code, i = 0, 1, ...)")


def check(dataset: str, options: Mapping[str, Any], data_dir: str,
          fields: Mapping[str, str]) -> None:
  """Raises :class:`~mtl_jax.data.catalog.MissingDataError` if a folder of
  ``{record field: release folder}`` is missing from ``train/`` or ``val/``,
  or a ``split_file`` is missing."""
  root = files.dataset_root(dataset, options, data_dir)
  paths = [os.path.join(root, f, name) for f in ("train", "val")
           for name in fields.values()]
  files.require(dataset, paths, layout(fields), root)
  if options["split_file"]:
    _split_file(options["split_file"], dataset)


def load(dataset: str, options: Mapping[str, Any], split: str, data_dir: str,
         fields: Mapping[str, str], converters: Mapping[str, Callable]
         ) -> files.NpyRecords:
  """The records of ``split``.

  Args:
    dataset: the dataset name.
    options: its options (``path``, ``validation_fraction``, ``split_file``,
      ``seed``).
    split: ``train``, ``validation`` or ``test``.
    data_dir: the data directory.
    fields: ``{record field: release folder}``.
    converters: ``{record field: (array, path) -> array}``.

  Raises:
    MissingDataError: a folder is missing.
    ValueError: the folders of the split hold different numbers of files.
  """
  check(dataset, options, data_dir, fields)
  base_dir = folder(files.dataset_root(dataset, options, data_dir), split, options)
  counts = {name: files.npy_count(os.path.join(base_dir, name))
            for name in fields.values()}
  if len(set(counts.values())) != 1:
    raise ValueError(f"Dataset {dataset!r}: the folders of {base_dir} hold "
                     f"different numbers of files: {counts}.")
  count = next(iter(counts.values()))
  if count == 0:
    raise files.MissingDataError(
        f"Dataset {dataset!r}: {os.path.join(base_dir, next(iter(fields.values())))} "
        f"holds no <i>.npy file. Expected layout: {layout(fields)}; see "
        f"{files.README_SECTION}.")
  return files.NpyRecords(
      {field: (os.path.join(base_dir, name), converters[field])
       for field, name in fields.items()},
      indices(dataset, options, split, count))
