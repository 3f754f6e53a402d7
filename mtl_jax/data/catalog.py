"""Catalog datasets: TFDS datasets whose features become tasks.

Each adapter reads a TFDS catalog dataset with ``tfds.data_source``
(array_record files, random access, no TensorFlow) and presents it to the
pipeline as records holding ``image`` (uint8) and one field per task, like the
embedded datasets:

* ``celeb_a``: the 40 binary attributes as 40 tasks (binary, accuracy), images
  resized to ``image_size`` (default 64) square; official splits.
* ``dsprites``: ``shape`` (3 classes), ``scale`` (6), ``orientation``
  (regression of ``(sin k angle, cos k angle)``, ``k`` the shape's rotational
  symmetry, as for :mod:`mtl_jax.data.sprites`), ``x``, ``y`` (regression in
  [0, 1]). Pixels 0/1 become 0/255.
* ``shapes3d``: ``floor_hue``, ``wall_hue``, ``object_hue`` (10 classes
  each: the hues are cyclic), ``scale`` (8), ``shape`` (4) and
  ``orientation`` (regression: the angle in [-30, 30] degrees over 30).
* ``smallnorb``: ``category`` (5), ``instance`` (10), ``elevation`` (9),
  ``azimuth`` (18), ``lighting`` (6), all multiclass, from the left camera
  image.

``multi_mnist`` / ``multi_fashion`` (the MultiMNIST recipe on ``mnist`` /
``fashion_mnist``) are in :mod:`mtl_jax.data.multi_mnist` and use the tools
here.

Splits: dSprites and 3D Shapes have only ``train``; ``validation_fraction``
and ``test_fraction`` of it are split off by a permutation drawn from
``seed``. smallNORB's official train and test splits hold disjoint object
instances, so ``instance`` cannot be learned across them: by default
(``official_split=False``) both are pooled and split by the seeded
permutation; with ``official_split=True`` the official test split is used, the
validation split is taken from the official train split, and the ``instance``
task is left out.

Images are resized by area averaging (exact box filter, vectorised numpy);
``image_size`` equal to the stored size leaves them untouched.

Data: nothing is downloaded unless the option ``download=True`` is set
(``tfds.data_source(..., download=True)``, writing array_record files under
``data_dir``). Otherwise the prepared dataset must be under ``data_dir``
(``<data_dir>/<tfds name>/<version>/``), and a clear
:class:`MissingDataError` says how to prepare it.

References:
  Liu, Luo, Wang, Tang. Deep Learning Face Attributes in the Wild. ICCV 2015
  (CelebA).
  Matthey, Higgins, Hassabis, Lerchner. dSprites: Disentanglement testing
  Sprites dataset, 2017. https://github.com/deepmind/dsprites-dataset
  Burgess, Kim. 3D Shapes Dataset, 2018. https://github.com/deepmind/3d-shapes
  LeCun, Huang, Bottou. Learning Methods for Generic Object Recognition with
  Invariance to Pose and Lighting. CVPR 2004 (smallNORB).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from absl import logging as absl_logging
import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data import base, sprites
from mtl_jax.validators import at_least

_SPLIT_STREAM = 7  # seed stream of the permutation that carves splits
_MIN_IMAGE_SIZE = 8
_ACCURACY = ("accuracy",)
_REGRESSION = ("mae", "r2")

# The 40 attributes of CelebA, in the order of list_attr_celeba.txt (and of
# the TFDS ``attributes`` feature).
CELEB_A_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes",
    "Bald", "Bangs", "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair",
    "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair",
    "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young")


class MissingDataError(FileNotFoundError):
  """A catalog dataset is not prepared under ``data_dir`` (and no download)."""


# --- Reading TFDS data sources ------------------------------------------------


README_SECTION = 'README.md, section "Catalog datasets"'


def _prepare_hint(tfds_name: str, root: str) -> str:
  return (
      f"To prepare it (needs network, once): set config.data.download=True, or "
      f"run `tfds build {tfds_name} --data_dir={root} --file_format=array_record` "
      f"(or, in Python, tfds.data_source({tfds_name!r}, data_dir={root!r}, "
      "download=True, builder_kwargs={'file_format': 'array_record'})). "
      "Generating most TFDS image datasets needs TensorFlow (pip install "
      "tensorflow) at that time only; reading needs only array_record. Data "
      "prepared on another machine can be copied: point config.data.data_dir "
      f"(or ${base.DATA_DIR_ENV}) at the directory holding {tfds_name}/. "
      f"See {README_SECTION}.")


def data_problem(dataset: str, tfds_name: str, root: str) -> str | None:
  """Why ``tfds_name`` cannot be read from ``root``, or None.

  Returns:
    None when the dataset is prepared under ``root`` in array_record format,
    else a message naming the problem and how to prepare or convert the data.
  """
  try:
    builder = tfds.builder(tfds_name, data_dir=root)
    prepared, path = builder.is_prepared(), builder.data_path
    file_format = builder.info.file_format if prepared else None
  except Exception:  # pylint: disable=broad-except
    prepared, path, file_format = False, f"{root}/{tfds_name}", None
  if not prepared:
    return (f"Dataset {dataset!r} reads the TFDS dataset {tfds_name!r}, which "
            f"is not prepared under {root} (expected {path}/dataset_info.json). "
            + _prepare_hint(tfds_name, root))
  if file_format != tfds.core.FileFormat.ARRAY_RECORD:
    return (
        f"Dataset {dataset!r} reads the TFDS dataset {tfds_name!r}, which is "
        f"prepared at {path} as {file_format}, without random access. Convert "
        f"it: `tfds convert_format --dataset_version_dir={path} "
        "--out_file_format=array_record`, or prepare it again with "
        "--file_format=array_record.")
  return None


def open_split(dataset: str, tfds_name: str, split: str, root: str,
               download: bool) -> Sequence:
  """``tfds.data_source(tfds_name, split=split)`` with a clear error.

  Raises:
    MissingDataError: the data is not prepared under ``root`` (or is not in
      array_record format) and ``download`` is False.
  """
  kwargs = {"file_format": "array_record"} if download else None
  try:
    return tfds.data_source(tfds_name, split=split, data_dir=root,
                            download=download, builder_kwargs=kwargs)
  except Exception as error:  # pylint: disable=broad-except
    problem = None if download else data_problem(dataset, tfds_name, root)
    if problem is None:
      raise  # The data is there (or was to be downloaded): another problem.
    raise MissingDataError(problem) from error


def check_prepared(spec: base.DatasetSpec, options: Mapping[str, Any],
                   root: str) -> None:
  """Raises :class:`MissingDataError` now if catalog dataset ``spec`` is absent.

  Opens its ``train`` split as training will (TFDS metadata, no records), so
  that missing data is reported before anything is compiled. Datasets outside
  the catalog, and ``download=True`` (fetched when first read), pass.

  Raises:
    MissingDataError: the TFDS data is not prepared under ``root``, or not as
      array_record (the message says what, where, and how to prepare it).
    ValueError: bad options (e.g. fractions), as reading would.
  """
  if spec.name in NAMES and not options.get("download") and "train" in spec.splits:
    # TFDS warns of the missing folders it probes; the error says it all.
    with base._absl_verbosity(absl_logging.ERROR):  # pylint: disable=protected-access
      spec.load(options, "train", root)


def read_rows(source: Sequence, keys: Sequence[int]) -> list[dict]:
  """``[source[k] for k in keys]``.

  Records are read one by one: the data source of ``tfds.testing.mock_data``
  (tfds 4.9.10) has no working ``__getitems__``, and decoding an image costs
  as much as reading its record anyway.
  """
  return [source[int(k)] for k in keys]


class Concat:
  """Several data sources read as one (index ``i`` of the concatenation)."""

  def __init__(self, sources: Sequence[Sequence]):
    self.sources = list(sources)
    self.offsets = np.cumsum([0] + [len(s) for s in self.sources])

  def __len__(self) -> int:
    return int(self.offsets[-1])

  def __getitem__(self, index: int) -> dict:
    which = int(np.searchsorted(self.offsets, index, side="right")) - 1
    return self.sources[which][int(index - self.offsets[which])]


class View:
  """The records of a split, made from source rows on the fly.

  Record ``i`` is ``transform(rows)`` of the source rows ``indices[i]`` (one
  index, or a row of indices when a record combines several source rows).

  Args:
    source: a random-access sequence of TFDS records.
    indices: ``[n]`` or ``[n, k]`` integer array of source rows.
    transform: ``rows -> {field: array [b, ...]}`` for ``b`` records, given
      their ``b * k`` source rows in order.
  """

  def __init__(self, source: Sequence, indices: np.ndarray,
               transform: Callable[[list[dict]], dict[str, np.ndarray]]):
    self.source = source
    self.indices = np.asarray(indices, np.int64)
    self.transform = transform

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return self.__getitems__([index])[0]

  def __getitems__(self, keys: Sequence[int]) -> list[dict[str, np.ndarray]]:
    rows = read_rows(self.source, self.indices[np.asarray(keys, np.int64)].reshape(-1))
    arrays = self.transform(rows)
    return [{k: v[j] for k, v in arrays.items()} for j in range(len(keys))]


# --- Splits and images --------------------------------------------------------


def carve(n: int, seed: int, validation_fraction: float,
          test_fraction: float = 0.0) -> dict[str, np.ndarray]:
  """Disjoint sorted indices ``{train, validation[, test]}`` of ``range(n)``.

  The validation and test parts are ``round(fraction * n)`` indices of a
  permutation drawn from ``SeedSequence([seed, 7])``; train is the rest.
  """
  order = np.random.default_rng([int(seed), _SPLIT_STREAM]).permutation(n)
  num_test = int(round(n * test_fraction))
  num_validation = int(round(n * validation_fraction))
  parts = {"validation": order[num_test:num_test + num_validation],
           "train": order[num_test + num_validation:]}
  if test_fraction:
    parts["test"] = order[:num_test]
  return {k: np.sort(v) for k, v in parts.items()}


def check_fractions(dataset: str, options: Mapping[str, Any],
                    keys: Sequence[str]) -> None:
  """Raises unless each fraction is in (0, 1) and together they are < 1."""
  values = [float(options[k]) for k in keys]
  if min(values) <= 0 or sum(values) >= 1:
    raise ValueError(f"{dataset}: {', '.join(keys)} must be > 0 and sum to < 1, "
                     f"got {values}.")


def area_weights(size_in: int, size_out: int) -> np.ndarray:
  """``[size_out, size_in]`` box-filter weights: output pixel ``j`` averages
  the input interval ``[j, j + 1) * size_in / size_out`` (rows sum to 1)."""
  step = size_in / size_out
  low = np.arange(size_out)[:, None] * step
  pixels = np.arange(size_in)[None, :]
  overlap = np.minimum(low + step, pixels + 1) - np.maximum(low, pixels)
  return (np.clip(overlap, 0, None) / step).astype(np.float32)


def resize_area(images: np.ndarray, size: int) -> np.ndarray:
  """``[b, h, w, c]`` uint8 -> ``[b, size, size, c]`` uint8 by area averaging."""
  if images.shape[1:3] == (size, size):
    return images
  rows = area_weights(images.shape[1], size)
  cols = area_weights(images.shape[2], size)
  x = np.einsum("oh,bhwc->bowc", rows, images.astype(np.float32), optimize=True)
  x = np.einsum("pw,bowc->bopc", cols, x, optimize=True)
  return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def stack_images(rows: Sequence[Mapping], size: int, key: str = "image") -> np.ndarray:
  """The rows' images as one ``[b, size, size, c]`` uint8 array."""
  return resize_area(np.stack([np.asarray(r[key], np.uint8) for r in rows]), size)


def column(rows: Sequence[Mapping], key: str, dtype=None) -> np.ndarray:
  """``rows[*][key]`` as an array."""
  return np.asarray([r[key] for r in rows], dtype)


def check_image_size(dataset: str, options: Mapping[str, Any]) -> None:
  at_least(options["image_size"], f"{dataset}: image_size", _MIN_IMAGE_SIZE)


def multiclass(num_classes: int) -> dict:
  return {"kind": "multiclass", "num_classes": num_classes, "metrics": _ACCURACY}


def regression(dim: int = 1) -> dict:
  return {"kind": "regression", "dim": dim, "metrics": _REGRESSION}


def segmentation(num_classes: int, *, shape: tuple[int, int],
                 ignore_label: int = -1) -> dict:
  """A segmentation task: int labels ``(H, W) = shape``, ``ignore_label`` unlabelled.

  Metrics: the kind's defaults (mIoU, pixel accuracy; :mod:`mtl_jax.tasks`).
  """
  return {"kind": "segmentation", "num_classes": num_classes,
          "shape": tuple(shape), "ignore_label": ignore_label}


def depth(*, shape: tuple[int, int]) -> dict:
  """A depth task: float depths ``(H, W) = shape``, 0 = missing."""
  return {"kind": "depth", "shape": tuple(shape)}


def normals(*, shape: tuple[int, int]) -> dict:
  """A surface-normals task: float vectors ``(H, W, 3)``, all-zero = missing."""
  return {"kind": "normals", "shape": tuple(shape)}


def _square_shape(channels: int) -> Callable[[Mapping[str, Any]], tuple]:
  return lambda options: (options["image_size"], options["image_size"], channels)


# --- CelebA -------------------------------------------------------------------


def _celeb_a_tasks(options: Mapping[str, Any]) -> dict[str, dict]:
  del options
  return {name: {"kind": "binary", "num_labels": 1, "metrics": _ACCURACY}
          for name in CELEB_A_ATTRIBUTES}


def _celeb_a_transform(size: int):
  def transform(rows):
    out = {"image": stack_images(rows, size)}
    for name in CELEB_A_ATTRIBUTES:
      out[name] = np.asarray([r["attributes"][name] for r in rows], bool)
    return out
  return transform


def _celeb_a_load(options, split, root):
  check_image_size("celeb_a", options)
  source = open_split("celeb_a", "celeb_a", split, root, options["download"])
  return View(source, np.arange(len(source)), _celeb_a_transform(options["image_size"]))


CELEB_A = base.DatasetSpec(
    name="celeb_a", defaults={"image_size": 64, "download": False},
    tasks=_celeb_a_tasks, input_shape=_square_shape(3), load=_celeb_a_load)


# --- dSprites -----------------------------------------------------------------


def _dsprites_tasks(options: Mapping[str, Any]) -> dict[str, dict]:
  del options
  return {"shape": multiclass(3), "scale": multiclass(6),
          "orientation": regression(2), "x": regression(), "y": regression()}


def _dsprites_transform(size: int):
  def transform(rows):
    binary = np.stack([np.asarray(r["image"]) for r in rows]) > 0
    shape = column(rows, "label_shape", np.int64)
    return {"image": resize_area(binary.astype(np.uint8) * np.uint8(255), size),
            "shape": shape, "scale": column(rows, "label_scale", np.int64),
            "orientation": sprites.orientation_target(
                shape, column(rows, "value_orientation", np.float64)),
            "x": column(rows, "value_x_position", np.float32),
            "y": column(rows, "value_y_position", np.float32)}
  return transform


def _carved_load(dataset: str, transform: Callable[[Mapping], Callable]):
  """``load`` of a dataset with only a TFDS ``train`` split, carved by seed."""

  def load(options, split, root):
    check_image_size(dataset, options)
    check_fractions(dataset, options, ("validation_fraction", "test_fraction"))
    source = open_split(dataset, dataset, "train", root, options["download"])
    parts = carve(len(source), options["seed"], options["validation_fraction"],
                  options["test_fraction"])
    return View(source, parts[split], transform(options))

  return load


_CARVED_DEFAULTS = {"image_size": 64, "validation_fraction": 0.1,
                    "test_fraction": 0.1, "seed": 0, "download": False}

DSPRITES = base.DatasetSpec(
    name="dsprites", defaults=_CARVED_DEFAULTS, tasks=_dsprites_tasks,
    input_shape=_square_shape(1),
    load=_carved_load("dsprites", lambda o: _dsprites_transform(o["image_size"])))


# --- 3D Shapes ----------------------------------------------------------------

SHAPES3D_CLASSES = {"floor_hue": 10, "wall_hue": 10, "object_hue": 10,
                    "scale": 8, "shape": 4}
SHAPES3D_MAX_ANGLE = 30.0  # degrees: orientation spans [-30, 30]


def _shapes3d_tasks(options: Mapping[str, Any]) -> dict[str, dict]:
  del options
  tasks = {name: multiclass(n) for name, n in SHAPES3D_CLASSES.items()}
  tasks["orientation"] = regression()
  return tasks


def _shapes3d_transform(size: int):
  def transform(rows):
    out = {"image": stack_images(rows, size)}
    for name in SHAPES3D_CLASSES:
      out[name] = column(rows, f"label_{name}", np.int64)
    out["orientation"] = (column(rows, "value_orientation", np.float32)
                          / np.float32(SHAPES3D_MAX_ANGLE))
    return out
  return transform


SHAPES3D = base.DatasetSpec(
    name="shapes3d", defaults=_CARVED_DEFAULTS, tasks=_shapes3d_tasks,
    input_shape=_square_shape(3),
    load=_carved_load("shapes3d", lambda o: _shapes3d_transform(o["image_size"])))


# --- smallNORB ----------------------------------------------------------------

# task -> (TFDS feature, classes)
SMALLNORB_TASKS = {"category": ("label_category", 5), "instance": ("instance", 10),
                   "elevation": ("label_elevation", 9),
                   "azimuth": ("label_azimuth", 18),
                   "lighting": ("label_lighting", 6)}


def _smallnorb_tasks(options: Mapping[str, Any]) -> dict[str, dict]:
  return {name: multiclass(n) for name, (_, n) in SMALLNORB_TASKS.items()
          if not (options["official_split"] and name == "instance")}


def _smallnorb_transform(options: Mapping[str, Any]):
  size, names = options["image_size"], _smallnorb_tasks(options)

  def transform(rows):
    out = {"image": stack_images(rows, size)}
    for name in names:
      out[name] = column(rows, SMALLNORB_TASKS[name][0], np.int64)
    return out

  return transform


def _smallnorb_load(options, split, root):
  check_image_size("smallnorb", options)
  keys = ("validation_fraction",) + (() if options["official_split"] else ("test_fraction",))
  check_fractions("smallnorb", options, keys)
  opened = lambda s: open_split("smallnorb", "smallnorb", s, root, options["download"])
  if options["official_split"]:
    if split == "test":
      source = opened("test")
      return View(source, np.arange(len(source)), _smallnorb_transform(options))
    source = opened("train")
    parts = carve(len(source), options["seed"], options["validation_fraction"])
  else:
    source = Concat([opened("train"), opened("test")])
    parts = carve(len(source), options["seed"], options["validation_fraction"],
                  options["test_fraction"])
  return View(source, parts[split], _smallnorb_transform(options))


SMALLNORB = base.DatasetSpec(
    name="smallnorb",
    defaults={"image_size": 64, "official_split": False,
              "validation_fraction": 0.1, "test_fraction": 0.2, "seed": 0,
              "download": False},
    tasks=_smallnorb_tasks, input_shape=_square_shape(1), load=_smallnorb_load)


def tfds_name(dataset: str) -> str:
  """The TFDS catalog dataset a catalog dataset reads."""
  return {"multi_mnist": "mnist", "multi_fashion": "fashion_mnist"}.get(dataset, dataset)


NAMES = ("celeb_a", "dsprites", "multi_fashion", "multi_mnist", "shapes3d",
         "smallnorb")
