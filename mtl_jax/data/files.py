"""Datasets the user prepares as files: layout checks, .npy folders, images.

The benchmark datasets (:mod:`mtl_jax.data.nyuv2`,
:mod:`mtl_jax.data.cityscapes`, :mod:`mtl_jax.data.office`) are not TFDS
datasets: users download the files the authors' code reads (the preprocessed
``.npy`` releases of the MTAN code, the Office image folders) on a machine with
network and point ``config.data`` at them. Nothing here downloads.

Where a dataset's files live: ``config.data.path`` if set, else
``<data_dir>/<dataset name>`` (``data_dir``: ``config.data.data_dir``, else
``$MTL_JAX_DATA_DIR``, else ``~/.cache/mtl_jax/tensorflow_datasets``).

A :class:`FileDatasetSpec` adds ``check(options, data_dir)`` to a
:class:`~mtl_jax.data.base.DatasetSpec`: it raises
:class:`~mtl_jax.data.catalog.MissingDataError` (one line naming the missing
path, the expected layout and the README section) without reading any record,
so that a run can fail before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from mtl_jax.data import base
from mtl_jax.data.catalog import MissingDataError

README_SECTION = 'README.md, section "Benchmark datasets"'
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_NPY = re.compile(r"^(\d+)\.npy$")

__all__ = ["MissingDataError", "FileDatasetSpec", "README_SECTION",
           "dataset_root", "require", "npy_count", "NpyRecords", "read_image",
           "image_files", "read_list"]


@dataclasses.dataclass(frozen=True, eq=False)
class FileDatasetSpec(base.DatasetSpec):
  """A dataset read from files the user prepares.

  Attributes:
    check: ``(options, data_dir) -> None``; raises :class:`MissingDataError`
      when the files are not where the dataset reads them (checks folders and
      list files only: cheap, no record is read).
  """

  check: Optional[Callable[[Mapping[str, Any], str], None]] = None


def dataset_root(name: str, options: Mapping[str, Any], data_dir: str) -> str:
  """``options["path"]`` (user-expanded, absolute), else ``<data_dir>/<name>``."""
  path = options.get("path")
  if path:
    return os.path.abspath(os.path.expanduser(str(path)))
  return os.path.join(data_dir, name)


def require(dataset: str, paths: Sequence[str], layout: str, root: str) -> None:
  """Raises :class:`MissingDataError` naming the first of ``paths`` that is
  absent, the expected ``layout`` and where the dataset looked.

  Args:
    dataset: the dataset name (``config.data.name``).
    paths: files or folders that must exist.
    layout: the expected layout, e.g. ``<root>/train/image/<i>.npy``.
    root: the dataset's directory.
  """
  missing = [p for p in paths if not os.path.exists(p)]
  if missing:
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    raise MissingDataError(
        f"Dataset {dataset!r}: {missing[0]} is missing{more}. Expected layout: "
        f"{layout}, with <root> = {root} (set config.data.path to the "
        f"directory, or put it at <data_dir>/{dataset}). Nothing is downloaded; "
        f"see {README_SECTION}.")


def npy_count(folder: str) -> int:
  """The number ``n`` of files ``0.npy ... <n-1>.npy`` in ``folder``.

  Raises:
    ValueError: the numbered files are not exactly ``0 .. n-1`` (naming the
      first missing number).
  """
  numbers = sorted(int(m.group(1)) for m in map(_NPY.match, os.listdir(folder)) if m)
  for expected, number in enumerate(numbers):
    if number != expected:
      raise ValueError(f"{folder}: {expected}.npy is missing; the files must be "
                       f"numbered 0.npy .. {len(numbers) - 1}.npy.")
  return len(numbers)


class NpyRecords:
  """Records read from per-example ``<i>.npy`` files, one folder per field.

  Record ``k`` holds, for each field, ``convert(np.load(<folder>/<i>.npy),
  path)`` with ``i = indices[k]``.

  Args:
    fields: ``{field: (folder, convert)}``.
    indices: the file numbers of the records, in order.
  """

  def __init__(self, fields: Mapping[str, tuple[str, Callable]],
               indices: Sequence[int]):
    self.fields = dict(fields)
    self.indices = np.asarray(indices, np.int64)

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not -len(self) <= index < len(self):
      raise IndexError(f"Index {index} out of range for {len(self)} records.")
    number = int(self.indices[index])
    out = {}
    for field, (folder, convert) in self.fields.items():
      path = os.path.join(folder, f"{number}.npy")
      out[field] = convert(np.load(path, allow_pickle=False), path)
    return out


def read_image(path: str, size: int) -> np.ndarray:
  """The RGB image at ``path`` resized to ``size x size``: uint8 ``[size, size, 3]``.

  Bilinear resizing with PIL (``Image.resize(..., BILINEAR)``, which filters
  when it shrinks), as torchvision's ``Resize((size, size))`` used by LibMTL.
  """
  try:
    from PIL import Image  # pylint: disable=import-outside-toplevel
  except ImportError as error:  # pragma: no cover - pillow is installed in CI
    raise ImportError("Reading image folders needs pillow: pip install pillow.") from error
  with Image.open(path) as image:
    image = image.convert("RGB")
    if image.size != (size, size):
      image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, np.uint8)


def image_files(folder: str) -> list[str]:
  """The image files directly in ``folder`` (by suffix), sorted by name."""
  return sorted(f for f in os.listdir(folder)
                if f.lower().endswith(IMAGE_SUFFIXES)
                and os.path.isfile(os.path.join(folder, f)))


def read_list(path: str) -> list[tuple[str, int]]:
  """``(relative path, label)`` pairs of a list file (lines ``<path> <label>``).

  Raises:
    ValueError: a non-empty line that is not ``<path> <integer label>``
      (naming the file and line number).
  """
  pairs = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      parts = line.rsplit(None, 1)
      if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]):
        raise ValueError(f"{path}, line {number}: expected '<image path> <label>', "
                         f"got {line.strip()!r}.")
      pairs.append((parts[0].strip(), int(parts[1])))
  return pairs
