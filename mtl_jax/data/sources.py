"""Multi-input mode: each task draws its batch from its own dataset, same step.

``config.data.sources`` maps a source name to a data section like a
single-dataset ``config.data`` (``name``, builder options, ``data_dir``,
``in_memory``), plus three source keys:

* ``tasks``: the dataset tasks this source supplies: a name, a list of names,
  or ``{config task: dataset task}`` to rename them; default all of the
  dataset's tasks. Every task comes from exactly one source.
* ``split``: ``{split: split spec}`` overrides, e.g. ``{"train":
  "train[:50%]"}`` (TFDS slicing); other splits are read whole.
* ``batch_size``: this source's rows in every training step. Either every
  source sets it, and they add up to ``train.batch_size``, or none does and
  the step's rows are split equally. ``train.batch_size`` stays the rows of a
  whole step: what the model, the sharding and the throughput see.

Keys next to ``sources`` (``data_dir``, ``in_memory``, builder options, even
``name``) are shared by every source; a source's own keys win. ``num_threads``
and ``prefetch`` configure the one reader of all sources and go there only.
``config.data.tasks``, when set next to ``sources``, keeps a subset of the
sources' tasks (config names), as it does for a single dataset; a source left
with none is not read.

A training step's batch is one batch of each source concatenated along the
batch axis, sources in sorted order; a source's rows have zero targets and
False masks for the tasks it does not supply, so per-task means see only each
task's own rows. Each source shuffles with its own seed (the run seed and a
hash of its name) and counts its own epochs. Evaluation reads each source's
split in turn, once, so a task's metrics are over its own source's split. See
:mod:`mtl_jax.data.pipeline` for the batch layout and per-host slices.

Example::

  config.data = dict(
      name="sprites", image_size=32,        # shared by both sources
      sources=dict(
          shapes=dict(tasks=["shape"], split={"train": "train[:50%]"}),
          positions=dict(tasks={"x": "x", "y": "y"},
                         split={"train": "train[50%:]"})))
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any, Callable, Mapping, Optional, Sequence

from mtl_jax.data import base, checks

SOURCE_KEYS = ("tasks", "split", "batch_size")
# Keys that configure the one reader of all sources: only next to ``sources``.
READER_KEYS = ("num_threads", "prefetch")


@dataclasses.dataclass(frozen=True)
class Source:
  """One source of a multi-source ``config.data``.

  Attributes:
    name: the source's name (its key in ``config.data.sources``).
    section: its single-dataset data section (shared keys merged in, source
      keys removed).
    tasks: ``{config task: dataset task}`` it supplies.
    splits: ``{split: split spec}`` overrides.
    batch_size: its rows per training step, or None (an equal share).
  """

  name: str
  section: dict
  tasks: dict
  splits: dict
  batch_size: Optional[int] = None

  def split(self, split: str) -> str:
    """The split spec read for ``split``."""
    return self.splits.get(split, split)


def is_multi(config: Any) -> bool:
  """Whether ``config`` (a ``config.data`` section) has ``sources``."""
  return base.as_dict(config).get("sources") is not None


def _task_map(value: Any, natural: Mapping[str, dict], source: str,
              dataset: str) -> dict[str, str]:
  if value is None:
    mapping = {t: t for t in natural}
  elif isinstance(value, str):
    mapping = {value: value}
  elif isinstance(value, Mapping) or hasattr(value, "to_dict"):
    mapping = {str(k): str(v) for k, v in base.as_dict(value).items()}
  else:
    mapping = {str(t): str(t) for t in value}
  unknown = sorted(set(mapping.values()) - set(natural))
  if unknown or not mapping:
    raise ValueError(
        f"Source {source!r}: dataset {dataset!r} has no task(s) {unknown}. "
        f"Source tasks: {sorted(mapping.values())}; dataset tasks: "
        f"{sorted(natural)}.")
  return mapping


def _check_one_source_per_task(sources: Sequence[Source]) -> None:
  owners: dict[str, list[str]] = {}
  for source in sources:
    for task in source.tasks:
      owners.setdefault(task, []).append(source.name)
  shared = {t: names for t, names in owners.items() if len(names) > 1}
  if shared:
    task, names = sorted(shared.items())[0]
    raise ValueError(f"Task {task!r} comes from sources {names}; each task must "
                     f"come from exactly one source. Tasks per source: "
                     f"{supplied(sources)}.")


def _section(data: dict, name: str, own: Any) -> tuple[dict, dict]:
  """The source's data section (shared keys merged) and its source keys."""
  if not (isinstance(own, Mapping) or hasattr(own, "to_dict")):
    raise TypeError(f"config.data.sources.{name} must be a mapping (a data "
                    f"section), got {type(own).__name__}.")
  own = base.as_dict(own)
  reader = sorted(set(own) & set(READER_KEYS))
  if reader:
    raise ValueError(f"config.data.sources.{name}: set {reader} next to "
                     "config.data.sources; one reader serves every source.")
  shared = {k: v for k, v in data.items() if k not in ("sources", "tasks")}
  section = {**shared, **{k: v for k, v in own.items() if k not in SOURCE_KEYS}}
  return section, {k: own.get(k) for k in SOURCE_KEYS}


def _splits(name: str, value: Any) -> dict[str, str]:
  if value is None:
    return {}
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if not isinstance(value, Mapping):
    raise TypeError(f"config.data.sources.{name}.split must map split names to "
                    f"split specs, e.g. {{'train': 'train[:50%]'}}; got {value!r}.")
  return {str(k): str(v) for k, v in value.items()}


def parse(config: Any,
          natural_tasks: Callable[[dict], Mapping[str, dict]]) -> tuple[Source, ...]:
  """The sources of ``config`` in sorted order.

  Args:
    config: a ``config.data`` section with ``sources``.
    natural_tasks: ``section -> {task: declaration}`` of a single dataset.

  Raises:
    ValueError / TypeError: no sources; a source that is not a mapping; a
      dataset task a source's dataset lacks (listing both sets); a task in
      two sources (naming them); a bad ``split`` or ``batch_size``.
  """
  data = base.as_dict(config)
  given = base.as_dict(data.get("sources") or {})
  if not given:
    raise ValueError("config.data.sources is empty; give it at least one "
                     "source, or remove it and set config.data.name.")
  sources = []
  for name in sorted(given):
    section, keys = _section(data, name, given[name])
    natural = natural_tasks(section)
    tasks = _task_map(keys["tasks"], natural, name, section.get("name"))
    size = keys["batch_size"]
    if size is not None and (isinstance(size, bool) or int(size) != size
                             or size < 1):
      raise ValueError(f"config.data.sources.{name}.batch_size must be a "
                       f"positive integer, got {size!r}.")
    sources.append(Source(name, section, tasks, _splits(name, keys["split"]),
                          None if size is None else int(size)))
  _check_one_source_per_task(sources)
  return tuple(sources)


def keep(sources: Sequence[Source], config_tasks: Any) -> tuple[Source, ...]:
  """The sources restricted to some of their tasks (config task names), e.g.
  ``config.data.tasks`` or the tasks of ``config.tasks``; sources left with no
  task are dropped (they would only add masked rows).

  Raises:
    ValueError: a task no source supplies (listing the tasks asked for and
      the tasks per source).
  """
  names = checks.task_names(config_tasks)
  if names is None:
    return tuple(sources)
  missing = sorted(set(names) - {t for s in sources for t in s.tasks})
  if missing:
    raise ValueError(f"Task(s) {missing} come from no source. Tasks asked for: "
                     f"{list(names)}; tasks per source: {supplied(sources)}.")
  kept = (dataclasses.replace(
      s, tasks={t: d for t, d in s.tasks.items() if t in names}) for s in sources)
  return tuple(s for s in kept if s.tasks)


def supplied(sources: Sequence[Source]) -> dict[str, list[str]]:
  """``{source: [its config task names]}``, for error messages."""
  return {s.name: sorted(s.tasks) for s in sources}


def common_input_shape(shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
  """The one per-example input shape of all sources.

  Raises:
    ValueError: the sources' shapes differ (naming each source's shape).
  """
  distinct = {tuple(s) for s in shapes.values()}
  if len(distinct) > 1:
    raise ValueError(f"The sources' inputs have different per-example shapes "
                     f"{ {k: tuple(v) for k, v in shapes.items()} }; a shared "
                     "trunk needs one shape (e.g. set the same image_size).")
  return distinct.pop()


def rows_per_step(sources: Sequence[Source], global_batch: int) -> list[int]:
  """Each source's rows in a global training batch of ``global_batch`` rows.

  Raises:
    ValueError: some but not all sources set ``batch_size``; they do not add
      up to the global batch; or it does not split equally.
  """
  sizes = [s.batch_size for s in sources]
  names = [s.name for s in sources]
  if all(size is None for size in sizes):
    if global_batch % len(sources):
      raise ValueError(f"The batch of {global_batch} rows does not split equally "
                       f"over the {len(sources)} sources {names}; use a multiple "
                       "of the source count or set each source's batch_size.")
    return [global_batch // len(sources)] * len(sources)
  if None in sizes or sum(sizes) != global_batch:
    raise ValueError(f"The sources' batch_size {dict(zip(names, sizes))} must "
                     f"be set for every source and add up to the batch size "
                     f"{global_batch} (train.batch_size).")
  return sizes


def seed(run_seed: int, source: str) -> tuple[int, int]:
  """A source's shuffle seed: the run seed and a hash of its name."""
  return int(run_seed), zlib.crc32(source.encode())
