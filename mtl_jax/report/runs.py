"""Loading run directories for a report: metrics, config, final results.

A *train run* directory is what ``mtl-jax train`` writes: ``metrics.jsonl``,
``checkpoints/<step>/`` and (newer runs) ``config.json``. A *compare*
directory is what ``mtl-jax compare`` writes: ``compare.json`` and one train
run per label (``single-task/``, ``<method>/``). :func:`load` expands compare
directories into their runs, keeping the compare results and Delta_m.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Optional, Sequence

import numpy as np

from mtl_jax.train import logger

BASELINE = "single-task"  # mtl_jax.train.compare.BASELINE (not imported: no jax needed)


@dataclasses.dataclass
class Run:
  """One train run, loaded from its directory.

  Attributes:
    name: label shown in tables and legends (unique within a report).
    path: the run directory.
    records: all ``metrics.jsonl`` records (empty if the file is missing).
    config: the run's config as a dict, or None if none was found.
    config_source: the file the config was read from, or why there is none.
    results: ``{task: {metric: value}}`` on the report's split, or None.
    delta_m: Delta_m% from ``compare.json``, if the run comes from one.
    compare_dir: the compare directory the run belongs to, if any.
  """

  name: str
  path: str
  records: list
  config: Optional[dict]
  config_source: str
  results: Optional[dict] = None
  delta_m: Optional[float] = None
  compare_dir: Optional[str] = None

  @property
  def tasks(self) -> list[str]:
    """Task names: from the config, else from the ``loss/<task>`` records."""
    if self.config and isinstance(self.config.get("tasks"), dict):
      return sorted(self.config["tasks"])
    names = {k.split("/", 1)[1] for r in self.records for k in r
             if k.startswith("loss/") and k.count("/") == 1}
    return sorted(names)

  def series(self, name: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one record field on ``split`` (floats, NaN kept)."""
    steps, values = [], []
    for r in self.records:
      if r.get("split") == split and name in r:
        value = as_float(r[name])
        if value is not None:
          steps.append(int(r["step"]))
          values.append(value)
    return np.asarray(steps, np.int64), np.asarray(values, np.float64)

  def has(self, prefix: str, split: str = "train") -> bool:
    """Whether any ``split`` record has a field starting with ``prefix``."""
    return any(k.startswith(prefix) for r in self.records
               if r.get("split") == split for k in r)


def as_float(value) -> Optional[float]:
  """A record value as a float ("nan" strings included), or None."""
  if isinstance(value, bool):
    return float(value)
  if isinstance(value, (int, float)):
    return float(value)
  if isinstance(value, str):
    try:
      return float(value)
    except ValueError:
      return None
  return None


def read_config(path: str) -> tuple[Optional[dict], str]:
  """The config of a run directory and where it came from.

  Reads ``config.json`` if present, else the ``meta`` item of the latest
  checkpoint (``checkpoints/<step>/meta/metadata``, JSON written by Orbax).
  """
  direct = os.path.join(path, "config.json")
  if os.path.exists(direct):
    with open(direct) as f:
      return json.load(f), "config.json"
  ckpt_dir = os.path.join(path, "checkpoints")
  steps = sorted((int(d) for d in _listdir(ckpt_dir) if d.isdigit()), reverse=True)
  for step in steps:
    meta_file = os.path.join(ckpt_dir, str(step), "meta", "metadata")
    try:
      with open(meta_file) as f:
        config = json.load(f)["config"]
      config = json.loads(config) if isinstance(config, str) else config
      return config, os.path.relpath(meta_file, path)
    except (OSError, KeyError, ValueError, TypeError):
      continue
  return None, "no config.json and no checkpoint meta"


def _listdir(path: str) -> list[str]:
  return os.listdir(path) if os.path.isdir(path) else []


def final_results(records: Sequence[dict], split: str) -> Optional[dict]:
  """``{task: {metric: value}}`` from the last ``split`` record, or None.

  Evaluation records hold ``<task>/<metric>`` and ``loss/<task>``; losses are
  not metrics and are left out.
  """
  evals = [r for r in records if r.get("split") == logger.record_split(split)]
  if not evals:
    return None
  out: dict = {}
  for key, value in evals[-1].items():
    if key in ("step", "split") or key.startswith("loss/") or key.count("/") != 1:
      continue
    task, metric = key.split("/")
    number = as_float(value)
    out.setdefault(task, {})[metric] = math.nan if number is None else number
  return out


def load_train_run(path: str, split: str, name: Optional[str] = None) -> Run:
  """A train run directory (``metrics.jsonl``) as a :class:`Run`."""
  metrics = os.path.join(path, "metrics.jsonl")
  records = logger.read(metrics) if os.path.exists(metrics) else []
  config, source = read_config(path)
  return Run(name=name or os.path.basename(os.path.normpath(path)), path=path,
             records=records, config=config, config_source=source,
             results=final_results(records, split))


def is_compare_dir(path: str) -> bool:
  return os.path.exists(os.path.join(path, "compare.json"))


def load_compare(path: str) -> tuple[list[Run], dict]:
  """The runs of a compare directory, in its order, and its ``compare.json``."""
  with open(os.path.join(path, "compare.json")) as f:
    summary = json.load(f)
  runs = []
  for label, values in summary.get("results", {}).items():
    run = load_train_run(os.path.join(path, label), summary.get("split", "test"), label)
    run.results = values
    run.delta_m = summary.get("delta_m", {}).get(label)
    run.compare_dir = path
    runs.append(run)
  return runs, summary


def load(paths: Sequence[str], split: str = "test") -> tuple[list[Run], str]:
  """Runs of all given directories (compare directories expanded).

  Returns:
    The runs with unique names, and the split of their results (a compare
    directory's own split wins over ``split``).
  """
  for path in paths:
    if not os.path.isdir(path):
      raise FileNotFoundError(f"mtl-jax report: {path!r} is not a directory.")
    if is_compare_dir(path):
      with open(os.path.join(path, "compare.json")) as f:
        split = json.load(f).get("split", split)
  runs = []
  for path in paths:
    if is_compare_dir(path):
      runs.extend(load_compare(path)[0])
    elif os.path.exists(os.path.join(path, "metrics.jsonl")):
      runs.append(load_train_run(path, split))
    else:
      raise FileNotFoundError(
          f"mtl-jax report: {path!r} has neither metrics.jsonl (a train run) nor "
          "compare.json (a compare directory).")
  _make_names_unique(runs)
  return runs, split


def _make_names_unique(runs: list[Run]) -> None:
  """Prefixes clashing names with their parent directory, then numbers them."""
  def clashes():
    names = [r.name for r in runs]
    return [r for r in runs if names.count(r.name) > 1]
  for run in clashes():
    parent = os.path.basename(os.path.dirname(os.path.normpath(run.path)))
    run.name = f"{parent}/{run.name}" if parent else run.name
  seen: dict = {}
  for run in runs:
    if run.name in seen:
      seen[run.name] += 1
      run.name = f"{run.name}#{seen[run.name]}"
    else:
      seen[run.name] = 1
