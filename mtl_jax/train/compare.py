"""``mtl-jax compare``: single-task baselines vs. multi-task methods.

Trains the independent model (one full network per task, built from the same
config: the single-task baselines, all in one compiled run) and the
multi-task model with each requested method on the same data, seed and
schedule, then prints one table of per-task test metrics with Delta_m.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

from tqdm.auto import tqdm

from mtl_jax import aggregation, settings as settings_lib, weighting
from mtl_jax.losses.delta_m import delta_m
from mtl_jax.train import loop

BASELINE = "single-task"


def method_overrides(name: str) -> dict:
  """``config.method`` fields for a method given by name.

  ``config`` keeps the config's own method; a weighting name uses it with no
  aggregator; an aggregation name uses it with equal loss weights.
  """
  if name in weighting.REGISTRY:
    return dict(weighting=name, aggregation=None, engine="auto")
  if name in aggregation.REGISTRY:
    return dict(weighting="equal", aggregation=name, engine="auto")
  valid = ["config", *weighting.names(), *aggregation.names()]
  raise settings_lib.ConfigError(
      f"Unknown method {name!r} for compare; valid: {', '.join(valid)}.")


def _variant(config, name: str, **model_overrides):
  c = config.copy_and_resolve_references()
  c.unlock()
  if name != "config":
    c.method.weighting_kwargs = {}
    c.method.aggregation_kwargs = {}
    c.method.update(method_overrides(name))
  c.model.update(model_overrides)
  c.name = name
  return c


def compare(config, methods: Optional[Sequence[str]] = None, *,
            workdir: Optional[str] = None, progress: Optional[bool] = None,
            split: str = "test") -> dict:
  """Runs the baselines and each method; returns the results and the table.

  Returns:
    ``{"tasks", "results": {label: {task: {metric: value}}}, "delta_m":
    {label: float}, "steps_per_second": {label: float}, "table": str}``.
  """
  base = settings_lib.parse(config)
  workdir = workdir or base.workdir
  runs = {BASELINE: _variant(base.config, "equal", arch="independent")}
  for name in methods or list(base.compare_methods or ["config"]):
    runs[base.method.label if name == "config" else name] = _variant(base.config, name)
  results, speeds = {}, {}
  bar = tqdm(runs.items(), total=len(runs), desc="compare", unit="run",
             disable=None if progress is None else not progress, dynamic_ncols=True)
  for label, run_config in bar:
    bar.set_postfix_str(label)
    result = loop.train(run_config, workdir=os.path.join(workdir, label),
                        progress=progress, eval_splits=(split,))
    results[label] = result.evaluation[split]
    speeds[label] = result.steps_per_second
  tasks = base.tasks
  deltas = {label: delta_m(tasks, results[BASELINE], values)
            for label, values in results.items()}
  table = format_table(tasks, results, deltas)
  summary = {"tasks": [t.name for t in tasks], "split": split, "results": results,
             "delta_m": deltas, "steps_per_second": speeds, "table": table}
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "compare.json"), "w") as f:
    json.dump(summary, f, indent=2)
  with open(os.path.join(workdir, "compare.md"), "w") as f:
    f.write(table + "\n")
  return summary


def format_table(tasks, results: dict, deltas: dict) -> str:
  """A markdown table: one row per task metric, one column per run."""
  labels = list(results)
  lines = ["| task | metric | better | " + " | ".join(labels) + " |",
           "|---|---|---|" + "---|" * len(labels)]
  for t in tasks:
    for m in t.metrics:
      arrow = "higher" if t.direction(m) else "lower"
      cells = " | ".join(f"{results[l][t.name][m]:.4f}" for l in labels)
      lines.append(f"| {t.name} | {m} | {arrow} | {cells} |")
  cells = " | ".join(f"{deltas[l]:+.2f}" for l in labels)
  lines.append(f"| **Delta_m %** | all | lower | {cells} |")
  return "\n".join(lines)
