"""Metrics as JSON lines (``metrics.jsonl`` in the run directory).

Each line is one record: ``{"step": s, "split": "train" | "validation" |
"test" | "train_eval", ...flat metrics}``: ``train`` are the training steps'
records, the others evaluations of a whole split (``train_eval``: the
training split evaluated, so its records never mix with the steps' batch
losses; :func:`record_split`). Train records use the names ``loss/<task>``,
``weight/<task>``, ``agg_weight/<task>``, ``cos/<task_a>/<task_b>``,
``grad_norm``, ``total_loss``, ``skipped`` and ``empty`` (tasks without labels
in the batch). Evaluation records use ``<task>/<metric>`` and ``loss/<task>``.

:class:`TensorBoardWriter` writes the same records as TensorBoard event files
(tensorboardX, no TensorFlow) into the run directory, one scalar per numeric
field tagged ``<split>/<name>`` (``train/loss/shape``, ``test/shape/accuracy``);
booleans become 0/1 and list fields (``empty``, ``nonfinite_tasks``) are left
out. :func:`make_writer` returns both behind one :class:`Writers`, so
``tensorboard --logdir`` on a ``compare`` directory shows one run per method.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Sequence

import numpy as np

from mtl_jax.aggregation import gramians
from mtl_jax.tasks import Task


TRAIN_EVAL = "train_eval"


def record_split(split: str) -> str:
  """The ``split`` field of the records of an evaluation of ``split``."""
  return TRAIN_EVAL if split == "train" else split


def _py(x):
  x = np.asarray(x)
  value = x.item() if x.ndim == 0 else x.tolist()
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # JSON has no NaN/Inf; keep them visible as strings.
  return value


def flatten_train(tasks: Sequence[Task], metrics: dict) -> dict:
  """Host-side flat record from one step's metrics (already on host)."""
  names = [t.name for t in tasks]
  record = {}
  for i, name in enumerate(names):
    record[f"loss/{name}"] = _py(metrics["losses"][i])
    record[f"weight/{name}"] = _py(metrics["weights"][i])
    if "agg_weights" in metrics:
      record[f"agg_weight/{name}"] = _py(metrics["agg_weights"][i])
  if "gramian" in metrics and bool(metrics.get("solved", True)):
    gram = np.asarray(metrics["gramian"], np.float64)
    norms, cos = gramians.task_norms(gram), gramians.cosines(gram)
    for i, a in enumerate(names):
      record[f"grad_norm/{a}"] = _py(norms[i])
      for j in range(i + 1, len(names)):
        record[f"cos/{a}/{names[j]}"] = _py(cos[i, j])
  for key in ("total_loss", "grad_norm", "penalty"):
    record[key] = _py(metrics[key])
  record["skipped"] = bool(metrics["skipped"])
  if "solved" in metrics:
    record["solved"] = bool(metrics["solved"])
  record["empty"] = [n for n, c in zip(names, np.asarray(metrics["counts"])) if c == 0]
  if record["skipped"]:
    record["nonfinite_tasks"] = [
        n for n, l in zip(names, np.asarray(metrics["losses"])) if not np.isfinite(l)]
  return record


def flatten_eval(values: dict[str, dict[str, float]], losses: dict[str, float]) -> dict:
  record = {f"{task}/{m}": _py(v) for task, ms in values.items() for m, v in ms.items()}
  record.update({f"loss/{task}": _py(v) for task, v in losses.items()})
  return record


class JsonlWriter:
  """Appends records to ``<workdir>/metrics.jsonl`` (only on process 0).

  A torn last line (a crash mid-write) is dropped with a warning when the
  writer opens the file. The file never holds a ``(step, split)`` twice: a
  record whose key is already there replaces the older one.
  """

  def __init__(self, workdir: str, *, enabled: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = enabled
    self._keys: set = set()
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      if os.path.exists(self.path):
        repair(self.path)
        self._keys = {(r["step"], r["split"]) for r in read(self.path)}

  def write(self, step: int, split: str, record: dict) -> None:
    if not self.enabled:
      return
    key = (int(step), split)
    if key in self._keys:  # rare (a resume re-evaluating its last step)
      kept = [r for r in read(self.path) if (r["step"], r["split"]) != key]
      _rewrite(self.path, kept)
    self._keys.add(key)
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": key[0], "split": split, **record}) + "\n")

  def close(self) -> None:
    """Nothing to release: each write opens and closes the file."""


def _scalar(value) -> float | None:
  """A record field as a TensorBoard scalar, or None for non-scalar fields."""
  if isinstance(value, (bool, np.bool_)):
    return float(value)
  if isinstance(value, (int, float, np.integer, np.floating)):
    return float(value)
  if isinstance(value, str):  # non-finite values are kept as "nan", "inf", ...
    try:
      return float(value)
    except ValueError:
      return None
  return None


class TensorBoardWriter:
  """Writes records as TensorBoard scalars ``<split>/<name>`` (process 0 only).

  Args:
    workdir: directory of the event files (the run directory).
    enabled: False on processes other than 0; then nothing is created.
    purge_step: on a resumed run, the first step written again: TensorBoard
      hides older events at or after it (written by the interrupted run).
    flush_secs: how often pending events are flushed to disk.
  """

  def __init__(self, workdir: str, *, enabled: bool = True,
               purge_step: int | None = None, flush_secs: int = 10):
    self.enabled = enabled
    self._writer = None
    if enabled:
      from tensorboardX import SummaryWriter
      os.makedirs(workdir, exist_ok=True)
      self._writer = SummaryWriter(logdir=workdir, purge_step=purge_step,
                                   flush_secs=flush_secs)

  def write(self, step: int, split: str, record: dict) -> None:
    if self._writer is None:
      return
    for name, value in record.items():
      scalar = _scalar(value)
      if scalar is not None:
        self._writer.add_scalar(f"{split}/{name}", scalar, global_step=int(step))

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None


class Writers:
  """Sends each record to several writers; ``path`` is the JSON-lines file."""

  def __init__(self, *writers):
    self.writers = writers

  @property
  def path(self) -> str:
    return next(w.path for w in self.writers if hasattr(w, "path"))

  def write(self, step: int, split: str, record: dict) -> None:
    for w in self.writers:
      w.write(step, split, record)

  def close(self) -> None:
    for w in self.writers:
      w.close()


def make_writer(workdir: str, *, enabled: bool = True, tensorboard: bool = True,
                resumed_from: int | None = None) -> Writers:
  """The run's writers: JSON lines, plus TensorBoard events if ``tensorboard``.

  Args:
    workdir: the run directory.
    enabled: write at all (True on process 0 only).
    tensorboard: also write TensorBoard event files (``config.train.tensorboard``).
    resumed_from: the checkpoint step a resumed run restarts from, if any:
      TensorBoard then drops the interrupted run's events after it, as
      :func:`truncate_after` does for the JSON lines.
  """
  writers = [JsonlWriter(workdir, enabled=enabled)]
  if tensorboard:
    purge = None if resumed_from is None else int(resumed_from) + 1
    writers.append(TensorBoardWriter(workdir, enabled=enabled, purge_step=purge))
  return Writers(*writers)


def _parse(path: str, number: int, line: str) -> dict:
  try:
    record = json.loads(line)
  except ValueError as e:
    raise ValueError(f"{path}, line {number}: not a JSON record ({e}).") from None
  if not isinstance(record, dict) or "step" not in record or "split" not in record:
    raise ValueError(f"{path}, line {number}: not a metrics record (no step/split).")
  return record


def read(path: str) -> list[dict]:
  """All records of a ``metrics.jsonl`` file.

  Raises:
    ValueError: a line is not a record (the message names file and line).
  """
  with open(path) as f:
    return [_parse(path, n, line) for n, line in enumerate(f, 1) if line.strip()]


def _rewrite(path: str, records: list[dict]) -> None:
  """Replaces the file's records atomically (temporary file, rename)."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)
  os.replace(tmp, path)


def repair(path: str) -> bool:
  """Drops a torn last line (a crash mid-write) with a warning; True if it did.

  A broken line before the last is not a torn write: it raises ValueError.
  """
  with open(path) as f:
    lines = f.read().split("\n")
  while lines and not lines[-1].strip():
    lines.pop()
  if not lines:
    return False
  try:
    _parse(path, len(lines), lines[-1])
    return False
  except ValueError as e:
    warnings.warn(f"Dropping the torn last line of {path} (line {len(lines)}): "
                  f"{str(e).split(': ', 1)[-1]}", RuntimeWarning, stacklevel=2)
  _rewrite(path, [_parse(path, n, l) for n, l in enumerate(lines[:-1], 1) if l.strip()])
  return True


def truncate_after(path: str, step: int) -> None:
  """Drops records past ``step`` (written by a run that was then interrupted)."""
  if not os.path.exists(path):
    return
  repair(path)
  _rewrite(path, [r for r in read(path) if r["step"] <= step])


def last_step(path: str) -> int | None:
  """The largest step of the file's records (None: no file or no records)."""
  if not os.path.exists(path):
    return None
  repair(path)
  steps = [r["step"] for r in read(path)]
  return max(steps) if steps else None
