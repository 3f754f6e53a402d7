"""The grain pipeline: shuffle, repeat, per-host slices, padded batches.

grain orders example *indices*: ``range(n) -> shuffle(seed) ->
repeat(num_epochs) -> [pad] -> batch(batch_size) -> every process_count-th
batch``; each batch's records are then read and checked by :class:`Collate`.
Global step ``s`` is the ``G = batch_size * process_count`` consecutive indices
``[s * G, (s + 1) * G)`` of the shuffled stream and process ``p`` gets rows
``[p * B, (p + 1) * B)`` of it, so the processes' batches of one step together
are exactly the global batch of a single-process run with the same seed.

With ``drop_remainder=False`` the stream is padded to a whole number of global
batches with padding rows whose inputs and targets are zeros and whose masks are
False for every task: shapes stay static, every process runs the same number of
steps, and every real example is counted exactly once.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import grain
import numpy as np

from mtl_jax.data import checks


class Padding:
  """A padding row of the index stream."""


class Columns:
  """A split held in memory: arrays with a leading example axis.

  Reading a batch is one fancy-indexing gather per feature instead of one
  record decode per example.
  """

  def __init__(self, arrays: Mapping[str, np.ndarray]):
    self.arrays = dict(arrays)
    self._length = len(next(iter(self.arrays.values())))

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return {k: v[index] for k, v in self.arrays.items()}

  def gather(self, indices: Sequence[int],
             features: Sequence[str]) -> dict[str, np.ndarray]:
    """``{feature: values [len(indices), ...]}``."""
    missing = sorted(set(features) - set(self.arrays))
    if missing:
      raise KeyError(f"Records have no feature(s) {missing}; their features "
                     f"are {sorted(self.arrays)}.")
    indices = np.asarray(indices, np.int64)
    return {f: self.arrays[f][indices] for f in features}


def _stack(rows: Sequence[Mapping], feature: str) -> np.ndarray:
  try:
    return np.asarray([row[feature] for row in rows])
  except KeyError:
    raise KeyError(f"Records have no feature {feature!r}; their features are "
                   f"{sorted(rows[0])}.") from None


def read(records: Sequence, indices: Sequence[int],
         features: Sequence[str]) -> dict[str, np.ndarray]:
  """The given features of ``records[indices]`` stacked into arrays."""
  if isinstance(records, Columns):
    return records.gather(indices, features)
  if hasattr(records, "__getitems__"):
    rows = records.__getitems__(list(indices))
  else:
    rows = [records[i] for i in indices]
  return {f: _stack(rows, f) for f in features}


def to_columns(records: Sequence, chunk: int = 1024) -> Columns:
  """Reads every record into memory."""
  if isinstance(records, Columns):
    return records
  parts = []
  for start in range(0, len(records), chunk):
    stop = min(start + chunk, len(records))
    first = records[start]
    parts.append(read(records, range(start, stop), list(first)))
  return Columns({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})


class Collate:
  """Reads a batch of indices (and padding rows) into one checked batch.

  Args:
    records: the split's records (a random-access sequence of dicts, or
      :class:`Columns`).
    tasks: ``{task: declaration}`` of the tasks to keep.
    input_feature: the record field holding the inputs.
    input_shape: the expected per-example input shape.
  """

  def __init__(self, records: Sequence, tasks: Mapping[str, dict],
               input_feature: str, input_shape: tuple[int, ...]):
    self.records = records
    self.tasks = dict(tasks)
    self.input_feature = input_feature
    self.input_shape = tuple(input_shape)

  def __call__(self, rows: Sequence[Any]) -> dict[str, Any]:
    real = np.array([not isinstance(r, Padding) for r in rows], bool)
    indices = [int(r) for r in rows if not isinstance(r, Padding)]
    if not indices:
      return self.padding_batch(len(rows))
    columns = read(self.records, indices, [self.input_feature, *self.tasks])
    inputs = checks.inputs(self.input_feature, columns[self.input_feature],
                           self.input_shape)
    targets = {name: checks.targets(name, decl, columns[name])
               for name, decl in self.tasks.items()}
    return {"inputs": _place(inputs, real),
            "targets": {k: _place(v, real) for k, v in targets.items()},
            "mask": {k: real.copy() for k in self.tasks}}

  def padding_batch(self, size: int) -> dict[str, Any]:
    """A batch of ``size`` padding rows (zeros, masks False)."""
    def zeros(decl):
      dtype = np.int32 if decl["kind"] == "multiclass" else np.float32
      return np.zeros((size,) + checks.target_shape(decl), dtype)
    return {"inputs": np.zeros((size,) + self.input_shape, np.float32),
            "targets": {k: zeros(d) for k, d in self.tasks.items()},
            "mask": {k: np.zeros(size, bool) for k in self.tasks}}


def _place(values: np.ndarray, real: np.ndarray) -> np.ndarray:
  """``values`` of the real rows in a zero array with one row per row."""
  if real.all():
    return values
  out = np.zeros((len(real),) + values.shape[1:], values.dtype)
  out[real] = values
  return out


class _PaddedDataset(grain.MapDataset):
  """``parent`` followed by :class:`Padding` rows up to ``length``."""

  def __init__(self, parent: grain.MapDataset, length: int):
    super().__init__(parent)
    self._length = length
    self._parent_length = len(parent)

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    if index % self._length >= self._parent_length:
      return Padding()
    return self._parent[index % self._length]

  def __str__(self) -> str:
    return f"_PaddedDataset(length={self._length})"


def grain_seed(seed: int) -> int:
  """A well-mixed 32-bit shuffle seed (grain shuffles epoch e with seed + e)."""
  return int(np.random.SeedSequence(int(seed)).generate_state(1)[0])


def _index_stream(num_records: int, *, global_batch: int, seed: int,
                  shuffle: bool, drop_remainder: bool,
                  num_epochs: int | None) -> grain.MapDataset:
  ds = grain.MapDataset.range(num_records)
  if shuffle:
    ds = ds.shuffle(seed=grain_seed(seed))
  if num_epochs != 1:
    ds = ds.repeat(num_epochs)
  if num_epochs is None:
    return ds
  if drop_remainder:
    if len(ds) < global_batch:
      raise ValueError(f"The split has {num_records} examples x {num_epochs} "
                       f"epoch(s), fewer than one global batch of "
                       f"{global_batch}; use drop_remainder=False or a smaller "
                       "batch.")
    return ds[: len(ds) // global_batch * global_batch]
  return _PaddedDataset(ds, math.ceil(len(ds) / global_batch) * global_batch)


def batches(collate: Collate, *, batch_size: int, seed: int, shuffle: bool,
            drop_remainder: bool, num_epochs: int | None, process_index: int,
            process_count: int) -> grain.MapDataset:
  """This process's batches as a grain ``MapDataset`` (see module docstring)."""
  if num_epochs is not None and num_epochs < 1:
    raise ValueError(f"num_epochs must be None or >= 1, got {num_epochs}.")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index must be in [0, {process_count}), got "
                     f"{process_index}.")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
  if not len(collate.records):
    raise ValueError("The split has no examples.")
  stream = _index_stream(len(collate.records),
                         global_batch=batch_size * process_count, seed=seed,
                         shuffle=shuffle, drop_remainder=drop_remainder,
                         num_epochs=num_epochs)
  local = stream.batch(batch_size, drop_remainder=True, batch_fn=collate)
  return local[process_index::process_count]


class BatchIterator:
  """An iterator of batches whose position can be saved and restored.

  ``get_state()`` is a JSON-serialisable dict; ``set_state(state)`` on an
  iterator built with the same arguments makes it yield exactly the batches
  the saved one would have yielded next.

  Attributes:
    num_batches: batches in the whole stream, or None when it repeats forever.
    batch_size: rows per batch (this process's share of the global batch).
  """

  def __init__(self, dataset: grain.MapDataset, collate: Collate,
               fingerprint: dict[str, Any], read_options: grain.ReadOptions, *,
               batch_size: int, repeats_forever: bool):
    self.num_batches = None if repeats_forever else len(dataset)
    self.batch_size = batch_size
    self._collate = collate
    self._fingerprint = fingerprint
    self._iterator = iter(dataset.to_iter_dataset(read_options))

  def __iter__(self) -> "BatchIterator":
    return self

  def __next__(self) -> dict[str, Any]:
    return next(self._iterator)

  def __enter__(self) -> "BatchIterator":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def close(self) -> None:
    """Stops the reader threads (also done when the iterator is collected)."""
    self._iterator.close()

  def empty_batch(self) -> dict[str, Any]:
    """A batch of padding rows with this iterator's shapes and dtypes (masks
    all False): for shape inference, e.g. ``jax.eval_shape``."""
    return self._collate.padding_batch(self.batch_size)

  def get_state(self) -> dict[str, Any]:
    """The position in the stream, with the arguments it depends on."""
    return {"pipeline": dict(self._fingerprint),
            "iterator": dict(self._iterator.get_state())}

  def set_state(self, state: Mapping[str, Any]) -> None:
    """Moves to the position saved by :meth:`get_state`.

    Raises:
      ValueError: the state was saved by a pipeline with other arguments.
    """
    saved = dict(state["pipeline"])
    if saved != self._fingerprint:
      diff = {k: (saved.get(k), self._fingerprint.get(k))
              for k in sorted(set(saved) | set(self._fingerprint))
              if saved.get(k) != self._fingerprint.get(k)}
      raise ValueError("The iterator state was saved by a pipeline with other "
                       f"arguments; (saved, this): {diff}.")
    self._iterator.set_state(dict(state["iterator"]))
