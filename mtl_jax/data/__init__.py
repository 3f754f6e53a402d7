"""Datasets and the input pipeline: ``config.data`` -> batches.

A batch is a dict of numpy arrays::

  {"inputs": float32 [B, *input_shape],          # images scaled to [0, 1]
   "targets": {task: int32 [B] (multiclass) | float32 [B] or [B, d]},
   "mask": {task: bool [B]}}                     # False on padding rows

``config`` is the ``config.data`` section: ``name`` (a dataset below),
``data_dir`` (None: ``$MTL_JAX_DATA_DIR``, else
``~/.cache/mtl_jax/tensorflow_datasets``), ``tasks`` (optional subset of the
dataset's task names to keep), ``num_threads`` and ``prefetch`` (grain read
options, default 2 and 4 batches), ``in_memory`` (read each split into memory
once per process; default True for the embedded datasets) and the dataset's
builder options (e.g. ``image_size`` for ``sprites``). The embedded datasets
are generated on first use under ``data_dir`` and reused afterwards; each set
of options has its own directory.

Multi-input mode: ``sources`` (source name -> such a section, plus the tasks it
supplies; :mod:`mtl_jax.data.sources`) draws each task's rows from its own
dataset: a training batch is one batch of every source concatenated (tasks a
source lacks masked out on its rows), evaluation reads each source in turn.

Datasets: ``sprites`` (dSprites-style shapes, :mod:`mtl_jax.data.sprites`),
``mmoe_synthetic`` (:mod:`mtl_jax.data.mmoe_synthetic`), ``multi_digits``
(MultiMNIST recipe on scikit-learn's digits, :mod:`mtl_jax.data.multi_digits`),
``scenes`` (procedural 3D scenes with per-pixel segmentation, depth and
surface normals, an embedded NYUv2; :mod:`mtl_jax.data.scenes`).
Catalog datasets read TFDS data prepared under ``data_dir`` (nothing is
downloaded unless ``download=True``): ``multi_mnist``, ``multi_fashion``
(:mod:`mtl_jax.data.multi_mnist`), ``celeb_a``, ``dsprites``, ``shapes3d``,
``smallnorb`` (:mod:`mtl_jax.data.catalog`).
Benchmark datasets read files the user prepares (nothing is downloaded; a
missing file is named with the expected layout, :mod:`mtl_jax.data.files`):
``nyuv2`` (:mod:`mtl_jax.data.nyuv2`) and ``cityscapes``
(:mod:`mtl_jax.data.cityscapes`), the preprocessed ``.npy`` releases of the
MTAN code with dense tasks; ``office_31`` and ``office_home``
(:mod:`mtl_jax.data.office`), image folders with one task per domain.
The 2-task toy problem and the Pareto-MTL problem are functions and datasets of
their two loss surfaces (2-task regression, with ``starts`` / ``front`` splits
holding the reference points): ``toy`` (:mod:`mtl_jax.data.toy`),
``pareto_mtl`` (:mod:`mtl_jax.data.pareto_mtl`).

Example::

  it = data.build(config.data, "train", batch_size=128, seed=0, shuffle=True,
                  drop_remainder=True)
  batch = next(it)
  state = it.get_state()   # JSON-serialisable; it.set_state(state) resumes
"""

from __future__ import annotations

from typing import Any, Sequence

import grain
import numpy as np

from mtl_jax.data import base, checks, pipeline, sources
from mtl_jax.data.base import DatasetSpec
from mtl_jax.data.pipeline import BatchIterator
from mtl_jax.registry import Registry

REGISTRY = Registry("dataset", __name__, {
    "sprites": "sprites:DATASET",
    "mmoe_synthetic": "mmoe_synthetic:DATASET",
    "multi_digits": "multi_digits:DATASET",
    "toy": "toy:DATASET",
    "pareto_mtl": "pareto_mtl:DATASET",
    "scenes": "scenes:DATASET",
    # Catalog datasets: TFDS data prepared under data_dir.
    "multi_mnist": "multi_mnist:MULTI_MNIST",
    "multi_fashion": "multi_mnist:MULTI_FASHION",
    "celeb_a": "catalog:CELEB_A",
    "dsprites": "catalog:DSPRITES",
    "shapes3d": "catalog:SHAPES3D",
    "smallnorb": "catalog:SMALLNORB",
    # Dense and domain benchmarks: files the user prepares (no TFDS).
    "nyuv2": "nyuv2:NYUV2",
    "cityscapes": "cityscapes:CITYSCAPES",
    "office_31": "office:OFFICE_31",
    "office_home": "office:OFFICE_HOME",
}, unknown="Unknown dataset {name!r}; valid datasets: {listed}.")


def register(spec: DatasetSpec, *, replace: bool = False) -> None:
  """Adds a dataset (e.g. a user's own) under ``spec.name``.

  Registering a name again replaces the earlier one; a built-in name needs
  ``replace=True``.
  """
  REGISTRY.register(spec.name, spec, replace=replace)


def names() -> tuple[str, ...]:
  """The names of all datasets."""
  return REGISTRY.names()


def get_spec(name: str) -> DatasetSpec:
  """The :class:`DatasetSpec` of dataset ``name``."""
  return REGISTRY.lookup(name)


def _spec_and_options(config: Any) -> tuple[DatasetSpec, dict[str, Any]]:
  name = base.as_dict(config).get("name")
  if not name:
    raise ValueError(f"config.data.name is not set; valid datasets: {list(names())}.")
  spec = get_spec(name)
  return spec, base.resolve_options(spec, config)


def _sources(config: Any) -> tuple[sources.Source, ...]:
  """The sources of a multi-source section, kept to ``config.tasks`` if set."""
  parsed = sources.parse(config, dataset_tasks)
  return sources.keep(parsed, base.as_dict(config).get("tasks"))


def _declarations(source: sources.Source) -> dict[str, dict]:
  """``{config task: declaration}`` of the tasks ``source`` supplies."""
  natural = dataset_tasks(source.section)
  return {task: dict(natural[field]) for task, field in source.tasks.items()}


def sections(config: Any) -> list[dict[str, Any]]:
  """The single-dataset data sections of ``config``: itself, or each source's
  (shared keys merged in, source keys removed), e.g. to check each dataset."""
  if sources.is_multi(config):
    return [dict(s.section) for s in _sources(config)]
  return [base.as_dict(config)]


def dataset_tasks(config: Any) -> dict[str, dict]:
  """The dataset's natural tasks: ``{task: declaration}`` as in ``config.tasks``.

  For a multi-source section: the tasks the sources supply, under their
  config names.
  """
  if sources.is_multi(config):
    tasks = {}
    for source in _sources(config):
      tasks.update(_declarations(source))
    return dict(sorted(tasks.items()))
  spec, options = _spec_and_options(config)
  return {k: dict(v) for k, v in spec.tasks(options).items()}


def input_shape(config: Any) -> tuple[int, ...]:
  """The per-example input shape, e.g. ``(64, 64, 1)``.

  Raises:
    ValueError: the sources of a multi-source section have different shapes.
  """
  if sources.is_multi(config):
    return sources.common_input_shape(
        {s.name: input_shape(s.section) for s in _sources(config)})
  spec, options = _spec_and_options(config)
  return tuple(spec.input_shape(options))


def _records(config: Any, split: str) -> Sequence:
  spec, options = _spec_and_options(config)
  in_memory = base.as_dict(config).get("in_memory")
  in_memory = spec.in_memory if in_memory is None else bool(in_memory)
  return base.load(spec, options, split, base.data_dir(config), in_memory)


def num_examples(config: Any, split: str) -> int:
  """The number of examples of ``split`` (generating the data if needed); for
  a multi-source section, the sum over the sources."""
  if sources.is_multi(config):
    return sum(len(_records(s.section, s.split(split))) for s in _sources(config))
  return len(_records(config, split))


def _check_selection(config: Any, tasks: Sequence[Any]) -> None:
  selected = checks.task_names(base.as_dict(config).get("tasks"))
  declared = tuple(sorted(t.name for t in tasks))
  if selected is not None and selected != declared:
    raise ValueError(f"config.data.tasks {list(selected)} differs from the "
                     f"declared tasks {list(declared)}.")


def validate_tasks(config: Any, tasks: Sequence[Any]) -> None:
  """Checks the trainer's :class:`mtl_jax.tasks.Task` objects against the data.

  A config may use a subset of the dataset's tasks; ``config.tasks`` (the
  data section's subset), when set, must name the same tasks. With sources,
  every task must come from exactly one source.

  Raises:
    ValueError: a task the dataset (or every source) lacks, a task in two
      sources, or ``config.tasks`` naming other tasks (listing both sets); a
      task whose kind, num_classes, num_labels or dim differs from the
      dataset's.
  """
  if sources.is_multi(config):
    kept = sources.keep(_sources(config), [t.name for t in tasks])
    for source in kept:
      checks.check_declarations([t for t in tasks if t.name in source.tasks],
                                _declarations(source), source.section.get("name"))
  else:
    spec, options = _spec_and_options(config)
    checks.check_declarations(tasks, spec.tasks(options), spec.name)
  _check_selection(config, tasks)


def _setting(config: Any, key: str, default: int) -> int:
  value = base.as_dict(config).get(key)
  return default if value is None else int(value)


def _fingerprint(spec, options, split, **pipeline_args) -> dict[str, Any]:
  return {"dataset": spec.name, "options": options, "split": split,
          **pipeline_args}


def _source(section: Any, split: str, fields: dict[str, str],
            shape: tuple[int, ...], *, name: str, seed, shuffle: bool,
            num_epochs: int | None, rows: int,
            check_rows: int) -> tuple[pipeline.Source, dict[str, Any]]:
  """One source of a plan (its first ``check_rows`` records checked) and the
  arguments its batches depend on."""
  spec, options = _spec_and_options(section)
  natural = spec.tasks(options)
  records = _records(section, split)
  collate = pipeline.Collate(records, {t: natural[f] for t, f in fields.items()},
                             spec.input_feature, shape, fields)
  collate(np.arange(min(check_rows, len(records))))  # Fail early on bad records.
  stream = pipeline.IndexStream(len(records), seed=seed, shuffle=shuffle,
                                num_epochs=num_epochs)
  return (pipeline.Source(name, collate, stream, rows),
          _fingerprint(spec, options, split))


def _multi_source_plan(config, split, *, batch_size, seed, shuffle, mix,
                       num_epochs, process_count):
  """The sources, tasks, input shape and per-source fingerprints of a plan."""
  kept = _sources(config)
  shape = input_shape(config)
  global_batch = batch_size * process_count
  rows = (sources.rows_per_step(kept, global_batch) if mix == "concat"
          else [0] * len(kept))
  parts, described, tasks = [], {}, {}
  for source, count in zip(kept, rows):
    part, described[source.name] = _source(
        source.section, source.split(split), source.tasks, shape,
        name=source.name, seed=sources.seed(seed, source.name), shuffle=shuffle,
        num_epochs=num_epochs, rows=count, check_rows=count or batch_size)
    described[source.name].update(tasks=source.tasks, rows=count)
    parts.append(part)
    tasks.update(part.collate.tasks)
  return parts, dict(sorted(tasks.items())), shape, described


def build(config: Any, split: str, *, batch_size: int, seed: int, shuffle: bool,
          drop_remainder: bool, num_epochs: int | None = None,
          process_index: int = 0, process_count: int = 1,
          mix: str | None = None) -> BatchIterator:
  """An iterator of this process's batches of ``split``.

  Args:
    config: the ``config.data`` section (see the module docstring).
    split: ``train``, ``validation`` or ``test``, optionally sliced as in TFDS
      (``train[:50%]``).
    batch_size: rows per batch on this process (the global batch is
      ``batch_size * process_count``).
    seed: shuffle seed; the same on every process. Each epoch is shuffled
      differently.
    shuffle: whether to shuffle.
    drop_remainder: drop the final partial global batch (training); if False,
      pad it with rows whose masks are all False (evaluation).
    num_epochs: passes over the split; None repeats forever.
    process_index: this process's index.
    process_count: the number of processes, each getting a disjoint slice of
      every global batch.
    mix: with ``config.sources``: ``concat`` (every global batch holds each
      source's rows: training) or ``chain`` (each source's split in turn:
      evaluation); default ``concat`` with ``drop_remainder``, else ``chain``.
      Ignored for a single dataset.

  Returns:
    A :class:`BatchIterator` with ``get_state`` / ``set_state``.

  Raises:
    ValueError / TypeError: unknown dataset, option, split or task; records
      whose labels are out of range or whose dtype or shape is wrong (checked
      on the first batch here, and on every batch as it is made).
  """
  mix = mix or ("concat" if drop_remainder else "chain")
  arguments = dict(batch_size=batch_size, seed=int(seed), shuffle=bool(shuffle),
                   drop_remainder=drop_remainder, num_epochs=num_epochs,
                   process_index=process_index, process_count=process_count)
  if sources.is_multi(config):
    parts, tasks, shape, described = _multi_source_plan(
        config, split, batch_size=batch_size, seed=seed, shuffle=shuffle,
        mix=mix, num_epochs=num_epochs, process_count=process_count)
    fingerprint = {"sources": described, "mix": mix, **arguments}
  else:
    spec, options = _spec_and_options(config)
    keep = checks.selected_tasks(base.as_dict(config).get("tasks"),
                                 spec.tasks(options), spec.name)
    shape = tuple(spec.input_shape(options))
    source, _ = _source(config, split, {k: k for k in keep}, shape, name="",
                        seed=seed, shuffle=shuffle, num_epochs=num_epochs,
                        rows=batch_size * process_count, check_rows=batch_size)
    parts, tasks, mix = [source], source.collate.tasks, "concat"
    fingerprint = _fingerprint(spec, options, split, tasks=list(keep), **arguments)
  plan = pipeline.Plan(parts, tasks, shape, mix=mix, batch_size=batch_size,
                       drop_remainder=drop_remainder, process_index=process_index,
                       process_count=process_count)
  read_options = grain.ReadOptions(
      num_threads=_setting(config, "num_threads", 2),
      prefetch_buffer_size=_setting(config, "prefetch", 4))
  return BatchIterator(plan, fingerprint, read_options)


__all__ = ["BatchIterator", "DatasetSpec", "REGISTRY", "build", "dataset_tasks", "get_spec",
           "input_shape", "names", "num_examples", "register", "sections",
           "validate_tasks"]
