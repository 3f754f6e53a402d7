"""The input pipeline: shuffled index streams, per-host slices, padded batches.

A split's example indices form a stream: its epochs one after another, epoch
``e`` a permutation of ``range(n)`` drawn from ``(seed, e)`` (the identity
without shuffling), ``num_epochs`` of them or forever. Global step ``s`` reads
the ``G = batch_size * process_count`` stream positions ``[s * G, (s + 1) * G)``
and process ``p`` gets rows ``[p * B, (p + 1) * B)`` of them, so the processes'
batches of one step together are exactly the global batch of a single-process
run with the same seed. A batch's indices are slices of a cached permutation
and, for a split held in memory, its records one fancy-indexing gather per
feature: no per-example Python work. grain runs the batch function on reader
threads, prefetches, and keeps the position (the next step) as the iterator's
checkpointable state.

With ``drop_remainder=False`` the stream is padded to a whole number of global
batches with padding rows (index -1) whose inputs and targets are zeros and
whose masks are False for every task: shapes stay static, every process runs
the same number of steps, and every real example is counted exactly once.

Several sources (multi-input mode, :mod:`mtl_jax.data.sources`), each with its
own records, tasks and index stream, make up one :class:`Plan`:

* ``concat``: the global batch of step ``s`` is source 0's next ``rows_0``
  stream positions, then source 1's next ``rows_1``, ... (sources in order).
  It ends with the first source to run out (``drop_remainder``) or the last
  (padding the others); with ``num_epochs=None`` it never ends.
* ``chain``: source 0's global batches, then source 1's, ...: each source's
  split once per epoch with the least padding (evaluation).

Rows of a source carry zeros and False masks for the tasks it does not supply.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import sys
import threading
from typing import Any, Mapping, Optional, Sequence

import grain
import numpy as np

from mtl_jax.data import checks
from mtl_jax.validators import at_least, choice, in_range

MIXES = ("concat", "chain")


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


class Slice:
  """Records ``[start, stop)`` of a random-access sequence of records."""

  def __init__(self, records: Sequence, start: int, stop: int):
    self.records, self.start, self.stop = records, start, stop

  def __len__(self) -> int:
    return self.stop - self.start

  def __getitem__(self, index: int):
    if not 0 <= index < len(self):
      raise IndexError(f"Index {index} out of range for {len(self)} records.")
    return self.records[self.start + index]

  def __getitems__(self, indices: Sequence[int]) -> list:
    return list(read_rows(self.records, [self.start + i for i in indices]))


def slice_records(records: Sequence, start: int, stop: int) -> Sequence:
  """Records ``[start, stop)``: views of in-memory columns, else a :class:`Slice`."""
  if (start, stop) == (0, len(records)):
    return records
  if isinstance(records, Columns):
    return Columns({k: v[start:stop] for k, v in records.arrays.items()})
  return Slice(records, start, stop)


def read_rows(records: Sequence, indices: Sequence[int]) -> Sequence[Mapping]:
  """``records[i]`` for each index, in one call where the records allow it."""
  if hasattr(records, "__getitems__"):
    return records.__getitems__(list(indices))
  return [records[i] for i in indices]


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
  rows = read_rows(records, [int(i) for i in indices])
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


def zeros_batch(size: int, tasks: Mapping[str, dict],
                input_shape: tuple[int, ...]) -> dict[str, Any]:
  """A batch of ``size`` padding rows (zeros, masks False) for ``tasks``."""
  def zeros(decl):
    return np.zeros((size,) + checks.target_shape(decl), checks.target_dtype(decl))
  return {"inputs": np.zeros((size,) + tuple(input_shape), np.float32),
          "targets": {k: zeros(d) for k, d in tasks.items()},
          "mask": {k: np.zeros(size, bool) for k in tasks}}


class Collate:
  """Reads a batch of indices (-1: a padding row) into one checked batch.

  Args:
    records: the split's records (a random-access sequence of dicts, or
      :class:`Columns`).
    tasks: ``{task: declaration}`` of the tasks to keep.
    input_feature: the record field holding the inputs.
    input_shape: the expected per-example input shape.
    fields: ``{task: record field}`` where a task's targets are read from a
      field of another name; by default the field is the task's name.
  """

  def __init__(self, records: Sequence, tasks: Mapping[str, dict],
               input_feature: str, input_shape: tuple[int, ...],
               fields: Optional[Mapping[str, str]] = None):
    self.records = records
    self.tasks = dict(tasks)
    self.input_feature = input_feature
    self.input_shape = tuple(input_shape)
    self.fields = {t: (fields or {}).get(t, t) for t in self.tasks}

  def __call__(self, indices: Sequence[int]) -> dict[str, Any]:
    indices = np.asarray(indices, np.int64)
    real = indices >= 0
    if not real.any():
      return self.padding_batch(len(indices))
    columns = read(self.records, indices[real],
                   [self.input_feature, *self.fields.values()])
    inputs = checks.inputs(self.input_feature, columns[self.input_feature],
                           self.input_shape)
    targets = {name: checks.targets(name, decl, columns[self.fields[name]])
               for name, decl in self.tasks.items()}
    return {"inputs": _place(inputs, real),
            "targets": {k: _place(v, real) for k, v in targets.items()},
            "mask": {k: real.copy() for k in self.tasks}}

  def padding_batch(self, size: int) -> dict[str, Any]:
    """A batch of ``size`` padding rows (zeros, masks False)."""
    return zeros_batch(size, self.tasks, self.input_shape)


def _place(values: np.ndarray, real: np.ndarray) -> np.ndarray:
  """``values`` of the real rows in a zero array with one row per row."""
  if real.all():
    return values
  out = np.zeros((len(real),) + values.shape[1:], values.dtype)
  out[real] = values
  return out


class IndexStream:
  """Example indices at positions of a split's shuffled, repeated stream.

  Args:
    num_records: examples in the split.
    seed: an int or ints; epoch ``e`` is the permutation drawn from
      ``SeedSequence([*seed, e])``.
    shuffle: permute each epoch (else every epoch is ``0, 1, ..., n - 1``).
    num_epochs: epochs in the stream; None repeats forever.
  """

  _CACHED_EPOCHS = 4  # threads may read a few consecutive epochs at once

  def __init__(self, num_records: int, *, seed: int | Sequence[int],
               shuffle: bool, num_epochs: Optional[int]):
    if num_records < 1:
      raise ValueError("The split has no examples.")
    if num_epochs is not None and num_epochs < 1:
      raise ValueError(f"num_epochs must be None or >= 1, got {num_epochs}.")
    self.num_records = int(num_records)
    self.length = None if num_epochs is None else self.num_records * num_epochs
    self._entropy = ((int(seed),) if isinstance(seed, (int, np.integer))
                     else tuple(int(s) for s in seed))
    self._shuffle = bool(shuffle)
    self._orders: dict[int, np.ndarray] = {}
    self._lock = threading.Lock()

  def permutation(self, epoch: int) -> np.ndarray:
    """The example indices of ``epoch`` in stream order (when shuffling)."""
    with self._lock:
      order = self._orders.get(epoch)
    if order is None:
      order = np.random.default_rng([*self._entropy, epoch]).permutation(
          self.num_records)
      with self._lock:
        self._orders[epoch] = order
        while len(self._orders) > self._CACHED_EPOCHS:
          del self._orders[min(self._orders)]
    return order

  def __call__(self, start: int, stop: int) -> np.ndarray:
    """Indices at positions ``[start, stop)``; -1 past the end of the stream."""
    out = np.full(stop - start, -1, np.int64)
    end = stop if self.length is None else min(stop, self.length)
    position = start
    while position < end:
      epoch, offset = divmod(position, self.num_records)
      take = min(end - position, self.num_records - offset)
      out[position - start:position - start + take] = (
          self.permutation(epoch)[offset:offset + take] if self._shuffle
          else np.arange(offset, offset + take))
      position += take
    return out


@dataclasses.dataclass(frozen=True)
class Source:
  """One split feeding a :class:`Plan`.

  Attributes:
    name: the source's name in error messages ('' for a single dataset).
    collate: reads the source's rows.
    stream: the source's index stream.
    rows: rows of every global batch of ``concat`` (unused by ``chain``).
  """

  name: str
  collate: Collate
  stream: IndexStream
  rows: int = 0

  def steps(self, rows: int, drop_remainder: bool) -> Optional[int]:
    """Global batches of ``rows`` rows in the stream (None: endless)."""
    if self.stream.length is None:
      return None
    if not drop_remainder:
      return math.ceil(self.stream.length / rows)
    if self.stream.length < rows:
      where = f"Source {self.name!r}: the" if self.name else "The"
      epochs = self.stream.length // self.stream.num_records
      raise ValueError(f"{where} split has {self.stream.num_records} examples x "
                       f"{epochs} epoch(s), fewer than one global batch of "
                       f"{rows}; use drop_remainder=False or a smaller batch.")
    return self.stream.length // rows


def _widen(batch: dict[str, Any], tasks: Mapping[str, dict],
           input_shape: tuple[int, ...]) -> dict[str, Any]:
  """``batch`` with every task of ``tasks``, in order; missing ones masked."""
  if list(batch["targets"]) == list(tasks):
    return batch
  size = len(batch["inputs"])
  empty = zeros_batch(size, {k: d for k, d in tasks.items()
                             if k not in batch["targets"]}, input_shape)
  pick = lambda key, k: (batch if k in batch[key] else empty)[key][k]
  return {"inputs": batch["inputs"],
          "targets": {k: pick("targets", k) for k in tasks},
          "mask": {k: pick("mask", k) for k in tasks}}


def _concatenate(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
  if len(parts) == 1:
    return parts[0]
  join = lambda key: {k: np.concatenate([p[key][k] for p in parts])
                      for k in parts[0][key]}
  return {"inputs": np.concatenate([p["inputs"] for p in parts]),
          "targets": join("targets"), "mask": join("mask")}


class Plan:
  """Step -> this process's batch, over one or more sources.

  Args:
    sources: the sources, in batch order.
    tasks: ``{task: declaration}`` of every batch (the union of the sources').
    input_shape: the per-example input shape shared by the sources.
    mix: ``concat`` or ``chain`` (see the module docstring).
    batch_size: rows per batch on this process.
    drop_remainder: drop the final partial global batch, else pad it.
    process_index: this process's index.
    process_count: the number of processes.

  Attributes:
    num_steps: batches in the whole stream, or None when it never ends.
  """

  def __init__(self, sources: Sequence[Source], tasks: Mapping[str, dict],
               input_shape: tuple[int, ...], *, mix: str, batch_size: int,
               drop_remainder: bool, process_index: int, process_count: int):
    choice(mix, "mix", MIXES)
    at_least(batch_size, "batch_size", 1)
    in_range(process_index, "process_index", 0, process_count, closed="left")
    self.sources = tuple(sources)
    self.tasks = dict(tasks)
    self.input_shape = tuple(input_shape)
    self.mix = mix
    self.batch_size = batch_size
    self.global_batch = batch_size * process_count
    self._rows = (process_index * batch_size, (process_index + 1) * batch_size)
    if mix == "concat":
      self._check_rows()
      steps = [s.steps(s.rows, drop_remainder) for s in self.sources]
      ends = None if None in steps else (min if drop_remainder else max)(steps)
      self.num_steps = ends
    else:
      steps = [s.steps(self.global_batch, drop_remainder) for s in self.sources]
      if None in steps:
        raise ValueError("mix='chain' needs a finite num_epochs.")
      self._first_steps = np.cumsum([0] + steps).tolist()
      self.num_steps = self._first_steps[-1]

  def _check_rows(self) -> None:
    rows = [s.rows for s in self.sources]
    if sum(rows) != self.global_batch or min(rows) < 1:
      shares = {s.name: s.rows for s in self.sources}
      raise ValueError(f"The sources' rows per step {shares} must be positive "
                       f"and add up to the global batch {self.global_batch}.")

  def segments(self, step: int) -> list[tuple[Source, int, int]]:
    """``(source, first stream position, rows)`` of the global batch, in order."""
    if self.mix == "concat":
      return [(s, step * s.rows, s.rows) for s in self.sources]
    index = bisect.bisect_right(self._first_steps, step) - 1
    local = step - self._first_steps[index]
    return [(self.sources[index], local * self.global_batch, self.global_batch)]

  def __call__(self, step: int) -> dict[str, Any]:
    """This process's rows of global batch ``step``."""
    low, high = self._rows
    parts, row = [], 0
    for source, position, rows in self.segments(step):
      start, stop = max(low, row), min(high, row + rows)
      if start < stop:
        indices = source.stream(position + start - row, position + stop - row)
        parts.append(_widen(source.collate(indices), self.tasks,
                            self.input_shape))
      row += rows
    return _concatenate(parts)

  def padding_batch(self, size: int) -> dict[str, Any]:
    """A batch of ``size`` padding rows (zeros, masks False)."""
    return zeros_batch(size, self.tasks, self.input_shape)


class BatchIterator:
  """An iterator of batches whose position can be saved and restored.

  ``get_state()`` is a JSON-serialisable dict; ``set_state(state)`` on an
  iterator built with the same arguments makes it yield exactly the batches
  the saved one would have yielded next.

  Attributes:
    num_batches: batches in the whole stream, or None when it repeats forever.
    batch_size: rows per batch (this process's share of the global batch).
  """

  def __init__(self, plan: Plan, fingerprint: dict[str, Any],
               read_options: grain.ReadOptions):
    self.num_batches = plan.num_steps
    self.batch_size = plan.batch_size
    self._plan = plan
    self._fingerprint = fingerprint
    steps = grain.MapDataset.range(
        sys.maxsize if plan.num_steps is None else plan.num_steps)
    self._iterator = iter(steps.map(plan).to_iter_dataset(read_options))

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
    return self._plan.padding_batch(self.batch_size)

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
