"""What a dataset is to the pipeline, its options, and TFDS preparation.

A dataset is a :class:`DatasetSpec`: its builder options with defaults, its
natural tasks, its input shape, and a ``load`` function returning the records of
a split as a random-access sequence of dicts (a ``tfds`` array_record data
source for the embedded builders). The embedded builders are TFDS
``GeneratorBasedBuilder`` subclasses writing ``array_record`` files; no
TensorFlow is needed to write or read them.

Each set of builder options maps to its own TFDS builder config, named after the
options (``<data_dir>/<dataset>/<option=value,...>/<version>/``), so data
generated with different options never mixes and a second call reuses the
files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import os
import re
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from absl import logging as absl_logging
import tensorflow_datasets as tfds

from mtl_jax.data import pipeline

DATA_DIR_ENV = "MTL_JAX_DATA_DIR"
DEFAULT_DATA_DIR = "~/.cache/mtl_jax/tensorflow_datasets"
SPLITS = ("train", "validation", "test")
# Keys of ``config.data`` read by the pipeline rather than by a builder.
PIPELINE_KEYS = ("name", "data_dir", "tasks", "num_threads", "prefetch",
                 "in_memory", "sources")


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetSpec:
  """One dataset as seen by :func:`mtl_jax.data.build`.

  Attributes:
    name: the dataset name (``config.data.name``).
    defaults: builder options and their default values; a config may override
      any of them and nothing else.
    tasks: ``options -> {task: declaration}`` in the format of
      :mod:`mtl_jax.tasks`; each task's targets are the record field of the
      same name.
    input_shape: ``options -> shape`` of one example's inputs.
    load: ``(options, split, data_dir) -> records``: a random-access sequence
      of dicts of numpy arrays (or Python scalars).
    input_feature: the record field holding the inputs (uint8 inputs are
      scaled to [0, 1]; float inputs are used as they are).
    splits: the split names.
    in_memory: read whole splits into memory by default (``config.in_memory``
      overrides): right for the small embedded datasets, whose batches are
      then gathered instead of decoded record by record.
  """

  name: str
  defaults: Mapping[str, Any]
  tasks: Callable[[Mapping[str, Any]], dict[str, dict]]
  input_shape: Callable[[Mapping[str, Any]], tuple[int, ...]]
  load: Callable[[Mapping[str, Any], str, str], Sequence[Mapping[str, Any]]]
  input_feature: str = "image"
  splits: tuple[str, ...] = SPLITS
  in_memory: bool = False


def as_dict(config: Any) -> dict[str, Any]:
  """``config.data`` (a ConfigDict or a mapping) as a plain dict."""
  if hasattr(config, "to_dict"):
    return config.to_dict()
  return dict(config)


def _coerce(spec: DatasetSpec, key: str, value: Any) -> Any:
  default = spec.defaults[key]
  if default is None or value is None:
    return value
  if isinstance(default, bool):
    if not isinstance(value, bool):
      raise TypeError(f"Dataset {spec.name!r}: option {key!r} must be a bool, "
                      f"got {value!r}.")
    return value
  if isinstance(default, int):
    if isinstance(value, bool) or int(value) != value:
      raise TypeError(f"Dataset {spec.name!r}: option {key!r} must be an "
                      f"integer, got {value!r}.")
    return int(value)
  if isinstance(default, float):
    return float(value)
  return value


def resolve_options(spec: DatasetSpec, config: Any) -> dict[str, Any]:
  """The builder options of ``config``: the defaults overridden by the config.

  Raises:
    ValueError: a key is neither a builder option nor a pipeline key.
  """
  given = {k: v for k, v in as_dict(config).items() if k not in PIPELINE_KEYS}
  unknown = sorted(set(given) - set(spec.defaults))
  if unknown:
    raise ValueError(
        f"Dataset {spec.name!r}: unknown option(s) {unknown}; its options are "
        f"{sorted(spec.defaults)} and the pipeline reads {list(PIPELINE_KEYS)}.")
  options = dict(spec.defaults)
  options.update({k: _coerce(spec, k, v) for k, v in given.items()})
  return options


def data_dir(config: Any) -> str:
  """``config.data_dir``, else ``$MTL_JAX_DATA_DIR``, else the default cache."""
  path = as_dict(config).get("data_dir") or os.environ.get(DATA_DIR_ENV)
  return os.path.abspath(os.path.expanduser(path or DEFAULT_DATA_DIR))


def config_name(options: Mapping[str, Any]) -> str:
  """A readable TFDS config name that differs whenever the options differ."""
  return ",".join(f"{key}={options[key]!r}" for key in sorted(options))


@dataclasses.dataclass(eq=False)
class OptionsConfig(tfds.core.BuilderConfig):
  """A TFDS builder config carrying a builder's options as a dict."""

  options: dict[str, Any] = dataclasses.field(default_factory=dict)


class EmbeddedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A builder that generates its data (nothing to download).

  Subclasses set ``name`` and ``VERSION``, read their options from
  ``self.builder_config.options``, and write one generator per split of
  :data:`SPLITS`. They stay out of TFDS's global registry. Bump ``VERSION``
  whenever the generated records change, so old caches are not reused.
  """

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    # No URL checksums to look up next to the code (the default lookup also
    # needs the optional importlib_resources package).
    return None

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {split: self._generate_examples(split) for split in SPLITS}


def examples(arrays: Mapping[str, Sequence]) -> Iterator[tuple[int, dict]]:
  """``(index, record)`` pairs of a split given as equal-length columns.

  What an embedded builder's ``_generate_examples`` returns: record ``i``
  holds row ``i`` of every column of ``arrays``.
  """
  for i in range(len(next(iter(arrays.values())))):
    yield i, {key: value[i] for key, value in arrays.items()}


@contextlib.contextmanager
def _absl_verbosity(level: int):
  previous = absl_logging.get_verbosity()
  absl_logging.set_verbosity(level)
  try:
    yield
  finally:
    absl_logging.set_verbosity(previous)


@contextlib.contextmanager
def _no_progress_bars():
  tqdm_utils = tfds.core.utils.tqdm_utils
  previous = tqdm_utils._active  # pylint: disable=protected-access
  tqdm_utils.display_progress_bar(False)
  try:
    yield
  finally:
    tqdm_utils.display_progress_bar(previous)


@contextlib.contextmanager
def _file_lock(path: str):
  """Holds an exclusive lock on ``path`` (processes preparing the same data)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


@functools.lru_cache(maxsize=32)
def _prepared(builder_cls: type, options: tuple, root: str):
  options = dict(options)
  name = config_name(options)
  lock = os.path.join(root, ".locks", f"{builder_cls.name}-{name}.lock")
  with _file_lock(lock):
    with _absl_verbosity(absl_logging.ERROR):  # "Using custom data config..."
      builder = builder_cls(
          config=OptionsConfig(name=name, options=options,
                               description=f"Options: {options}"),
          data_dir=root, file_format="array_record")
    with _no_progress_bars():  # generation takes seconds; keep logs clean
      builder.download_and_prepare()
  return builder


def prepare(builder_cls: type, options: Mapping[str, Any], root: str):
  """The prepared builder of ``builder_cls`` for ``options`` under ``root``.

  Generates the data on first use (under a file lock, so concurrent processes
  generate it once) and reuses it afterwards.
  """
  return _prepared(builder_cls, tuple(sorted(options.items())), root)


def tfds_loader(builder_cls: type):
  """A :attr:`DatasetSpec.load` reading ``builder_cls``'s array_record files."""

  def load(options, split, root):
    builder = prepare(builder_cls, options, root)
    if split not in builder.info.splits:
      raise ValueError(f"Dataset {builder_cls.name!r} has no split {split!r}; "
                       f"its splits are {sorted(builder.info.splits)}.")
    return builder.as_data_source(split)

  return load


@functools.lru_cache(maxsize=16)
def _columns(spec: DatasetSpec, options: tuple, split: str,
             root: str) -> pipeline.Columns:
  return pipeline.to_columns(spec.load(dict(options), split, root))


_SPLIT = re.compile(r"^(\w+)(?:\[(-?\d+%?)?:(-?\d+%?)?\])?$")


def parse_split(split: str) -> tuple[str, Optional[str], Optional[str]]:
  """``"train[10%:-20]"`` -> ``("train", "10%", "-20")``; ``"test"`` -> ``("test", None, None)``.

  The TFDS slicing syntax: bounds are example counts or percentages of the
  split (rounded to the closest example), negative ones counted from the end.
  """
  match = _SPLIT.match(str(split))
  if not match:
    raise ValueError(f"Bad split {split!r}; use a split name, optionally sliced "
                     "as in TFDS: 'train', 'train[:50%]', 'train[100:-10%]'.")
  return match.group(1), match.group(2), match.group(3)


def _bound(value: Optional[str], num_examples: int, default: int) -> int:
  if value is None:
    return default
  if value.endswith("%"):
    percent = float(value[:-1])
    if abs(percent) > 100:
      raise ValueError(f"Split slice bound {value} is outside [-100%, 100%].")
    value = int(round(percent * num_examples / 100))
  bound = int(value)
  return max(0, min(num_examples, bound + num_examples if bound < 0 else bound))


def load(spec: DatasetSpec, options: Mapping[str, Any], split: str, root: str,
         in_memory: bool) -> Sequence:
  """The records of ``split`` (optionally sliced, e.g. ``train[:50%]``), read
  into memory once per process if asked."""
  name, start, stop = parse_split(split)
  if name not in spec.splits:
    raise ValueError(f"Dataset {spec.name!r} has no split {name!r}; its splits "
                     f"are {list(spec.splits)}.")
  if in_memory:
    records = _columns(spec, tuple(sorted(options.items())), name, root)
  else:
    records = spec.load(options, name, root)
  n = len(records)
  start, stop = _bound(start, n, 0), _bound(stop, n, n)
  if start >= stop:
    raise ValueError(f"Dataset {spec.name!r}: split {split!r} selects no "
                     f"examples of the {n} of {name!r}.")
  return pipeline.slice_records(records, start, stop)
