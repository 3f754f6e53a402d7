"""Metrics as JSON lines (``metrics.jsonl`` in the run directory).

Each line is one record: ``{"step": s, "split": "train" | "validation" |
"test", ...flat metrics}``. Train records use the names ``loss/<task>``,
``weight/<task>``, ``agg_weight/<task>``, ``cos/<task_a>/<task_b>``,
``grad_norm``, ``total_loss``, ``skipped`` and ``empty`` (tasks without labels
in the batch). Evaluation records use ``<task>/<metric>`` and ``loss/<task>``.
"""

from __future__ import annotations

import json
import math
import os
from typing import Sequence

import numpy as np

from mtl_jax.tasks import Task


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
  if "gramian" in metrics:
    gram = np.asarray(metrics["gramian"], np.float64)
    norms = np.sqrt(np.maximum(np.diag(gram), 0.0))
    for i, a in enumerate(names):
      record[f"grad_norm/{a}"] = _py(norms[i])
      for j in range(i + 1, len(names)):
        denom = norms[i] * norms[j]
        record[f"cos/{a}/{names[j]}"] = _py(gram[i, j] / denom if denom > 0 else 0.0)
  for key in ("total_loss", "grad_norm", "penalty"):
    record[key] = _py(metrics[key])
  record["skipped"] = bool(metrics["skipped"])
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
  """Appends records to ``<workdir>/metrics.jsonl`` (only on process 0)."""

  def __init__(self, workdir: str, *, enabled: bool = True):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = enabled
    if enabled:
      os.makedirs(workdir, exist_ok=True)

  def write(self, step: int, split: str, record: dict) -> None:
    if not self.enabled:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": int(step), "split": split, **record}) + "\n")


def read(path: str) -> list[dict]:
  """All records of a ``metrics.jsonl`` file."""
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def truncate_after(path: str, step: int) -> None:
  """Drops records past ``step`` (written by a run that was then interrupted)."""
  if not os.path.exists(path):
    return
  kept = [r for r in read(path) if r["step"] <= step]
  with open(path, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in kept)
