"""The text of ``report.md``: run summary, metric table with Delta_m, config.

A run whose config names its benchmark (``config.benchmark = dict(name=
"nyuv2", protocol="A")``) also gets the published values of that benchmark
and protocol (:mod:`mtl_jax.report.published`) beside its own, under the
metric table.

Functions here return markdown strings; they do not draw (see
:mod:`mtl_jax.report.figures`) or write files (see :mod:`mtl_jax.report`).
"""

from __future__ import annotations

import json
import math
import os
from typing import Mapping, Optional, Sequence

from mtl_jax.losses import metrics as metrics_lib
from mtl_jax.losses.delta_m import delta_m
from mtl_jax.report import published
from mtl_jax.report.runs import BASELINE, Run
from mtl_jax.tasks import Task

DASH = "—"


def _get(config: Optional[dict], *keys, default=DASH):
  value = config
  for key in keys:
    if not isinstance(value, dict) or key not in value:
      return default
    value = value[key]
  return default if value is None else value


def metric_direction(run: Run, task: str, metric: str) -> Optional[bool]:
  """True where higher is better: config override, else the metric registry."""
  override = _get(run.config, "tasks", task, "higher_is_better", metric, default=None)
  if override is not None:
    return bool(override)
  try:
    return metrics_lib.get(metric).higher_is_better
  except (KeyError, ValueError):
    return None


def directions(runs: Sequence[Run]) -> dict[str, dict[str, Optional[bool]]]:
  """``{task: {metric: higher_is_better}}`` over all runs' results, ordered."""
  out: dict = {}
  for run in runs:
    for task, metrics in (run.results or {}).items():
      declared = list(_get(run.config, "tasks", task, "metrics", default=()) or ())
      ordered = [m for m in declared if m in metrics] + [m for m in metrics
                                                          if m not in declared]
      for metric in ordered:
        if metric not in out.setdefault(task, {}):
          out[task][metric] = metric_direction(run, task, metric)
  return {t: out[t] for t in sorted(out)}


def runs_table(runs: Sequence[Run], out_dir: str) -> str:
  """One row per run: method, model, schedule and where it lives."""
  lines = ["| run | weighting | aggregation | arch | trunk | optimizer | steps "
           "| batch | last logged step | directory |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for run in runs:
    c = run.config
    optimizer = (f"{_get(c, 'optimizer', 'name')} "
                 f"lr={_get(c, 'optimizer', 'learning_rate')}" if c else DASH)
    last = max((int(r["step"]) for r in run.records if r.get("split") == "train"),
               default=None)
    cells = [f"`{run.name}`", _get(c, "method", "weighting"),
             _get(c, "method", "aggregation"), _get(c, "model", "arch"),
             _get(c, "model", "trunk", "kind"), optimizer,
             _get(c, "train", "num_steps"), _get(c, "train", "batch_size"),
             DASH if last is None else last, f"`{_rel(run.path, out_dir)}`"]
    lines.append("| " + " | ".join(str(x) for x in cells) + " |")
  return "\n".join(lines)


def _rel(path: str, start: str) -> str:
  try:
    return os.path.relpath(path, start)
  except ValueError:  # another drive on Windows
    return path


def baseline_for(run: Run, runs: Sequence[Run]) -> Optional[Run]:
  """The single-task run ``run`` is measured against, if there is one.

  A run from a compare directory uses that directory's baseline; other train
  runs use the first given train run directory named ``single-task`` (never a
  compare directory's, which may come from another config).
  """
  def is_baseline(r):
    return (os.path.basename(os.path.normpath(r.path)) == BASELINE and bool(r.results)
            and r.compare_dir == run.compare_dir)
  return next((r for r in runs if is_baseline(r)), None)


def delta_m_of(run: Run, baseline: Run,
               dirs: Mapping[str, Mapping[str, Optional[bool]]]) -> float:
  """Delta_m% of ``run`` vs. ``baseline`` over the baseline's metrics.

  A compare directory's own value is used as it is. Raises ``ValueError``
  when a metric is missing, has no known direction or a zero baseline.
  """
  if run.compare_dir is not None and run.compare_dir == baseline.compare_dir \
      and run.delta_m is not None:
    return float(run.delta_m)
  tasks = []
  for task, metrics in baseline.results.items():
    unknown = [m for m in metrics if dirs.get(task, {}).get(m) is None]
    if unknown:
      raise ValueError(f"no known direction for {task}/{', '.join(unknown)}")
    missing = [m for m in metrics if m not in (run.results or {}).get(task, {})]
    if missing:
      raise ValueError(f"{run.name} has no {task}/{', '.join(missing)}")
    tasks.append(Task(name=task, kind="regression", metrics=tuple(metrics),
                      higher_is_better={m: dirs[task][m] for m in metrics}))
  return delta_m(tasks, baseline.results, run.results)


def _fmt(value) -> str:
  return DASH if value is None else ("nan" if not math.isfinite(value) else f"{value:.4f}")


def metrics_table(runs: Sequence[Run], split: str,
                  dirs: Mapping[str, Mapping[str, Optional[bool]]]) -> tuple[str, list[str]]:
  """Per-task metrics (rows) of each run (columns), with a Delta_m row.

  The best value of each row is bold (when its direction is known and more
  than one run has it).

  Returns:
    The markdown table (empty if no run has ``split`` results) and notes to
    print under it (why Delta_m is missing, where it could not be computed).
  """
  notes: list[str] = []
  if not any(r.results for r in runs):
    return "", [f"No run has `{split}` evaluation records in metrics.jsonl, so "
                "there is no metric table."]
  lines = ["| task | metric | better | " + " | ".join(f"`{r.name}`" for r in runs) + " |",
           "|---|---|---|" + "---|" * len(runs)]
  for task, metrics in dirs.items():
    for metric, higher in metrics.items():
      values = [_value(r, task, metric) for r in runs]
      best = _best(values, higher)
      cells = [f"**{_fmt(v)}**" if i == best else _fmt(v) for i, v in enumerate(values)]
      arrow = DASH if higher is None else ("higher" if higher else "lower")
      lines.append(f"| {task} | {metric} | {arrow} | " + " | ".join(cells) + " |")
  baselines = [baseline_for(r, runs) for r in runs]
  if not any(baselines):
    notes.append(
        "No Delta_m: none of the runs is a single-task baseline. Report a "
        "`mtl-jax compare` directory, or also pass a train run directory named "
        f"`{BASELINE}` (the independent model on the same data and schedule).")
    return _with_published(lines, runs, baselines, dirs), notes
  cells = []
  for run, base in zip(runs, baselines):
    if base is None or not run.results:
      cells.append(DASH)
      continue
    try:
      cells.append(f"{delta_m_of(run, base, dirs):+.2f}")
    except (ValueError, KeyError) as e:
      cells.append("n/a")
      notes.append(f"Delta_m of `{run.name}` vs. `{base.name}`: {e}.")
  lines.append("| **Delta_m %** | all | lower | " + " | ".join(cells) + " |")
  alone = [r.name for r, b in zip(runs, baselines) if b is None]
  if alone:
    notes.append(f"No Delta_m for {', '.join(f'`{n}`' for n in alone)}: no "
                 f"`{BASELINE}` run from the same compare directory (or, for a "
                 f"train run, no train run directory named `{BASELINE}`).")
  named = sorted({b.name for b in baselines if b is not None})
  notes.insert(0, "Delta_m%: mean relative change over all metrics vs. the single-task "
               f"baseline ({', '.join(f'`{n}`' for n in named)}); positive is worse.")
  return _with_published(lines, runs, baselines, dirs), notes


def _with_published(lines: list[str], runs, baselines, dirs) -> str:
  extra = published_tables(runs, baselines, dirs)
  return "\n".join(lines) + (f"\n\n{extra}" if extra else "")


def benchmark_of(run: Run) -> Optional[tuple[str, str]]:
  """``(name, protocol)`` of the run's ``config.benchmark``, or None."""
  section = _get(run.config, "benchmark", default=None)
  if not isinstance(section, dict) or not section.get("name"):
    return None
  return str(section["name"]), str(section.get("protocol") or "")


def method_of(run: Run) -> str:
  """The run's method: its aggregation (unless a plain mean or sum), else its
  weighting, else (no config) the run's name (a compare label)."""
  aggregation = _get(run.config, "method", "aggregation", default=None)
  if aggregation and aggregation not in ("mean", "sum", "none"):
    return str(aggregation)
  return str(_get(run.config, "method", "weighting", default=run.name))


def _statistic(statistic: str, run: Run, base: Optional[Run],
               dirs: Mapping[str, Mapping[str, Optional[bool]]]) -> str:
  """The run's own value of a published statistic, formatted, or why not."""
  if statistic.startswith("auc/"):
    value = _value(run, statistic.split("/", 1)[1], "auc")
    return "n/a" if value is None else f"{value:.4f}"
  if base is None:
    return "n/a (no baseline)"
  try:
    if statistic == "delta_m":
      return f"{delta_m_of(run, base, dirs):+.2f}"
    counted = {t: {m: dirs[t][m] for m in metrics}
               for t, metrics in base.results.items()}
    return f"{published.delta_p(counted, base.results, run.results or {}):+.2f}"
  except (ValueError, KeyError, TypeError) as e:
    return f"n/a ({e})"


def published_tables(runs: Sequence[Run], baselines: Sequence[Optional[Run]],
                     dirs: Mapping[str, Mapping[str, Optional[bool]]]) -> str:
  """The published values of each benchmark / protocol the runs name, with
  the runs' own values beside the same method; empty when no run names a
  benchmark. A single-task run (the baseline) is not listed."""
  groups: dict = {}
  for run, base in zip(runs, baselines):
    key = benchmark_of(run)
    if key is not None and os.path.basename(os.path.normpath(run.path)) != BASELINE:
      groups.setdefault(key, []).append((run, base))
  return "\n\n".join(_published_table(name, protocol, members, dirs)
                     for (name, protocol), members in groups.items())


def _published_table(name: str, protocol: str, members, dirs) -> str:
  try:
    rows = published.rows(name, protocol)
  except ValueError as e:
    return f"_Published results: {e}_"
  spec = published.PROTOCOLS[protocol]
  ours = {}
  for run, base in members:
    ours.setdefault(method_of(run), []).append((run, base))
  lines = [f"**Published results: `{name}`, protocol {protocol}** "
           f"({'higher' if spec.higher_is_better else 'lower'} is better). "
           f"{spec.description}.", "",
           "| method | statistic | published | source | this report |",
           "|---|---|---|---|---|"]
  shown = set()
  for row in rows:
    mine = ours.get(row.ours, []) if row.ours else []
    shown.update(id(run) for run, _ in mine)
    cell = "; ".join(f"`{run.name}` {_statistic(row.statistic, run, base, dirs)}"
                     for run, base in mine) or DASH
    value = f"{row.value:.4f}" if row.statistic.startswith("auc/") else f"{row.value:+.2f}"
    lines.append(f"| {row.method} | {row.statistic} | {value} | "
                 f"{row.citation.short} | {cell} |")
  statistics = list(dict.fromkeys(r.statistic for r in rows))
  for run, base in (m for group in ours.values() for m in group):
    if id(run) not in shown:
      for statistic in statistics:
        lines.append(f"| (not published) | {statistic} | {DASH} | {DASH} | "
                     f"`{run.name}` {_statistic(statistic, run, base, dirs)} |")
  lines.append("")
  lines += [f"- {c.short}: {c.title}; {c.where}." for c in published.cited(rows)]
  lines += [f"- {n}." for n in dict.fromkeys(r.note for r in rows if r.note)]
  lines.append("- A published value is comparable only with a run that follows "
               "the protocol's settings (architecture, schedule, epochs, seeds).")
  return "\n".join(lines)


def _value(run: Run, task: str, metric: str) -> Optional[float]:
  value = (run.results or {}).get(task, {}).get(metric)
  return None if value is None else float(value)


def _best(values: list, higher: Optional[bool]) -> Optional[int]:
  finite = [(v, i) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
  if higher is None or len(finite) < 2:
    return None
  return (max if higher else min)(finite)[1]


def config_section(runs: Sequence[Run]) -> str:
  """Each run's full config as collapsible JSON, or why it is missing."""
  parts = []
  for run in runs:
    if run.config is None:
      parts.append(f"- `{run.name}`: config not found ({run.config_source}).")
      continue
    parts.append(f"<details><summary><code>{run.name}</code> (from "
                 f"<code>{run.config_source}</code>)</summary>\n\n```json\n"
                 f"{json.dumps(run.config, indent=2)}\n```\n\n</details>")
  return "\n\n".join(parts)


def figure(title: str, result: tuple[str, object]) -> str:
  """Image links, or the reason the figure was skipped."""
  kind, value = result
  if kind == "ok":
    return "\n\n".join(f"![{title}]({path})" for path in value)
  return f"_{title}: skipped, {value}._"
