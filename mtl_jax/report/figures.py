"""Report figures as PNG files (matplotlib, Agg canvas; no display needed).

Each function draws one figure from loaded :class:`~mtl_jax.report.runs.Run`
objects, saves it to ``path`` and returns ``path``; when there is nothing to
draw it raises :class:`NoData` with a sentence saying why, which the report
prints in the figure's place. Figures are built with ``matplotlib.figure``
and an Agg canvas, so the global pyplot backend is never touched.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mtl_jax.report.runs import Run

DPI = 110


class NoData(Exception):
  """A figure has nothing to show; the message says why."""


def _figure(width: float, height: float) -> Figure:
  fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
  FigureCanvasAgg(fig)
  return fig


def _save(fig: Figure, path: str) -> str:
  fig.savefig(path, format="png")
  return path


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
  cols = min(n, max_cols)
  return math.ceil(n / cols), cols


def smooth(values: np.ndarray, window: int) -> np.ndarray:
  """Trailing moving average (shorter windows at the start), NaNs ignored."""
  if window <= 1 or len(values) == 0:
    return values
  finite = np.isfinite(values)
  sums = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
  counts = np.concatenate([[0], np.cumsum(finite)])
  hi = np.arange(1, len(values) + 1)
  lo = np.maximum(hi - window, 0)
  n = counts[hi] - counts[lo]
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(n > 0, (sums[hi] - sums[lo]) / np.maximum(n, 1), np.nan)


def _window(n: int) -> int:
  return max(1, n // 25)


def _plot_series(ax, steps, values, color, label):
  """Raw values faintly plus their moving average when there are many."""
  window = _window(len(values))
  if window > 1:
    ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
    ax.plot(steps, smooth(values, window), color=color, linewidth=1.6, label=label)
  else:
    marker = "." if len(values) < 20 else None
    ax.plot(steps, values, color=color, linewidth=1.6, label=label, marker=marker)


def _wide_positive(values: np.ndarray) -> bool:
  """Whether a log axis suits ``values``: all positive, spanning > 10x."""
  return bool(len(values) and values.min() > 0 and values.max() > 10 * values.min())


def _step_axis(ax) -> None:
  from matplotlib.ticker import MaxNLocator
  ax.set_xlabel("step")
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  ax.grid(True, alpha=0.3)


def _colors(n: int) -> list:
  from matplotlib import colormaps
  cmap = colormaps["tab10" if n <= 10 else "tab20"]
  return [cmap(i % cmap.N) for i in range(n)]


def loss_curves(runs: Sequence[Run], path: str) -> str:
  """Per-task training loss vs. step: one panel per task, one line per run.

  Validation losses (``eval_every``) are drawn as markers on the same colour.
  """
  tasks = sorted({t for r in runs for t in r.tasks})
  if not tasks or not any(r.has("loss/") for r in runs):
    raise NoData("no train records with `loss/<task>` (metrics.jsonl is empty or "
                 "missing)")
  rows, cols = _grid(len(tasks))
  fig = _figure(4.2 * cols, 3.0 * rows)
  axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
  colors = _colors(len(runs))
  for ax, task in zip(axes, tasks):
    shown = []
    for run, color in zip(runs, colors):
      steps, values = run.series(f"loss/{task}")
      if len(steps):
        _plot_series(ax, steps, values, color, run.name)
        shown.append(values[np.isfinite(values)])
      v_steps, v_values = run.series(f"loss/{task}", "validation")
      if len(v_steps):
        ax.plot(v_steps, v_values, linestyle="none", marker="o", markersize=4,
                color=color, markeredgecolor="black", markeredgewidth=0.5)
    if _wide_positive(np.concatenate(shown) if shown else np.zeros(0)):
      ax.set_yscale("log")
    ax.set_title(f"loss/{task}")
    _step_axis(ax)
  for ax in axes[len(tasks):]:
    ax.set_visible(False)
  handles, labels = axes[0].get_legend_handles_labels()
  if len(runs) > 1 and handles:
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(runs), 5))
  fig.suptitle("Training loss per task" + _smoothing_note(runs))
  return _save(fig, path)


def _smoothing_note(runs: Sequence[Run]) -> str:
  """A title suffix naming the moving-average windows, if any."""
  counts = [sum(1 for r in run.records if r.get("split") == "train") for run in runs]
  windows = {_window(c) for c in counts if c}
  windows.discard(1)
  if not windows:
    return ""
  return f" (lines: moving average over {'/'.join(map(str, sorted(windows)))} logged steps)"


def weights(run: Run, path: str) -> str:
  """Task-weight trajectories: ``weight/<task>`` and ``agg_weight/<task>``."""
  panels = [(prefix, title) for prefix, title in
            (("weight/", "loss weights (weight/<task>)"),
             ("agg_weight/", "aggregator weights (agg_weight/<task>)"))
            if run.has(prefix)]
  if not panels:
    raise NoData("no `weight/<task>` or `agg_weight/<task>` train records")
  fig = _figure(5.0 * len(panels), 3.4)
  axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)).ravel()
  colors = _colors(len(run.tasks))
  for ax, (prefix, title) in zip(axes, panels):
    shown = []
    for task, color in zip(run.tasks, colors):
      steps, values = run.series(prefix + task)
      if len(steps):
        _plot_series(ax, steps, values, color, task)
        shown.append(values)
    constant = shown and all(np.ptp(v) == 0 for v in shown)
    ax.set_title(title + (" - constant" if constant else ""))
    _step_axis(ax)
  handles, labels = axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6),
             fontsize="small")
  fig.suptitle(f"{run.name}: task weights" + _smoothing_note([run]))
  return _save(fig, path)


def cosine_pairs(run: Run) -> list[tuple[str, str]]:
  """The ``(a, b)`` task pairs with ``cos/<a>/<b>`` train records."""
  pairs = set()
  for r in run.records:
    if r.get("split") == "train":
      pairs.update(tuple(k.split("/")[1:]) for k in r
                   if k.startswith("cos/") and k.count("/") == 2)
  return sorted(pairs)


NO_COSINE = ("no `cos/<a>/<b>` records: the run's method computed no per-task "
             "gradients (loss weighting without a gradient aggregator logs no "
             "Gramian)")


def cosine_matrices(run: Run) -> tuple[list[str], np.ndarray, np.ndarray, int]:
  """Tasks, the mean and the final cosine matrices and the final step."""
  pairs = cosine_pairs(run)
  if not pairs:
    raise NoData(NO_COSINE)
  tasks = sorted({t for p in pairs for t in p})
  index = {t: i for i, t in enumerate(tasks)}
  mean, final = np.eye(len(tasks)), np.eye(len(tasks))
  last_step = 0
  for a, b in pairs:
    steps, values = run.series(f"cos/{a}/{b}")
    i, j = index[a], index[b]
    mean[i, j] = mean[j, i] = np.nanmean(values) if np.isfinite(values).any() else np.nan
    final[i, j] = final[j, i] = values[-1]
    last_step = max(last_step, int(steps[-1]))
  return tasks, mean, final, last_step


def _cosine_cmap():
  from matplotlib import colormaps
  return colormaps["RdBu_r"].with_extremes(bad="lightgray")


def cosine_heatmap(run: Run, path: str) -> str:
  """Heat maps of the gradient-cosine matrix: mean over steps, and final."""
  tasks, mean, final, last_step = cosine_matrices(run)
  n = len(tasks)
  size = 1.6 + 0.55 * n
  fig = _figure(2 * size + 1.2, size)
  axes = fig.subplots(1, 2)
  first = int(run.series(f"cos/{'/'.join(cosine_pairs(run)[0])}")[0][0])
  for ax, matrix, title in ((axes[0], mean, f"mean, steps {first}-{last_step}"),
                            (axes[1], final, f"final, step {last_step}")):
    shown = np.where(np.eye(n, dtype=bool), np.nan, matrix)  # diagonal: always 1
    image = ax.imshow(shown, cmap=_cosine_cmap(), vmin=-1, vmax=1)
    ax.set_xticks(range(n), tasks, rotation=45, ha="right")
    ax.set_yticks(range(n), tasks)
    ax.set_title(title)
    if n <= 8:
      for i in range(n):
        for j in range(n):
          if i == j:
            continue
          ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                  color="white" if abs(matrix[i, j]) > 0.6 else "black")
  fig.colorbar(image, ax=list(axes), shrink=0.8, label="cosine")
  fig.suptitle(f"{run.name}: cosine between per-task gradients")
  return _save(fig, path)


def cosine_lines(run: Run, path: str) -> str:
  """Gradient cosine of each task pair over training steps."""
  pairs = cosine_pairs(run)
  if not pairs:
    raise NoData(NO_COSINE)
  fig = _figure(7.5, 3.8)
  ax = fig.subplots()
  for (a, b), color in zip(pairs, _colors(len(pairs))):
    steps, values = run.series(f"cos/{a}/{b}")
    _plot_series(ax, steps, values, color, f"{a} · {b}")
  ax.axhline(0.0, color="black", linewidth=0.8)
  ax.set_ylim(-1.05, 1.05)
  _step_axis(ax)
  ax.set_ylabel("cosine")
  ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
  ax.set_title(f"{run.name}: gradient cosine over training"
               + _smoothing_note([run]))
  return _save(fig, path)


def pareto_points(runs: Sequence[Run], directions: Mapping[str, Mapping[str, bool]]):
  """Per-run ``(x, y)`` for a 2-task Pareto plot, the axes and their directions.

  Uses the first metric of each task on the report's split when every run
  has it; else the final evaluation ``loss/<task>``; else the final train
  ``loss/<task>``.

  Returns:
    ``(points {run: (x, y)}, (label_x, label_y), (higher_x, higher_y))``.

  Raises:
    NoData: fewer than two runs, runs not on the same two tasks, or a run with
      no value for a task.
  """
  if len(runs) < 2:
    raise NoData("a Pareto plot compares runs; only one run was given")
  task_sets = {tuple(r.tasks) for r in runs}
  if len(task_sets) != 1 or len(next(iter(task_sets))) != 2:
    counts = sorted({len(t) for t in task_sets})
    raise NoData("the Pareto plot is for runs on the same two tasks; these runs "
                 f"have {' / '.join(map(str, counts))} task(s)")
  tasks = next(iter(task_sets))
  metrics = [next(iter(directions.get(t, {})), None) for t in tasks]
  if all(m and r.results and m in r.results.get(t, {})
         for r in runs for t, m in zip(tasks, metrics)):
    points = {r.name: tuple(float(r.results[t][m]) for t, m in zip(tasks, metrics))
              for r in runs}
    return (points, tuple(f"{t} {m}" for t, m in zip(tasks, metrics)),
            tuple(bool(directions[t][m]) for t, m in zip(tasks, metrics)))
  for split, what in (("test", "test loss"), ("validation", "validation loss"),
                      ("train", "final train loss")):
    values = {r.name: [r.series(f"loss/{t}", split)[1] for t in tasks] for r in runs}
    if all(len(v) for vs in values.values() for v in vs):
      points = {name: tuple(float(v[-1]) for v in vs) for name, vs in values.items()}
      return points, tuple(f"{t} {what}" for t in tasks), (False, False)
  raise NoData("not every run has a final metric or loss for both tasks")


def non_dominated(points: Mapping[str, tuple], higher: tuple[bool, bool]) -> set:
  """Names of the points no other point dominates (better or equal in both)."""
  sign = np.array([1.0 if h else -1.0 for h in higher])
  goods = {n: sign * np.asarray(p, np.float64) for n, p in points.items()}
  front = set()
  for name, g in goods.items():
    if not np.all(np.isfinite(g)):
      continue
    dominated = any(np.all(o >= g) and np.any(o > g) for other, o in goods.items()
                    if other != name and np.all(np.isfinite(o)))
    if not dominated:
      front.add(name)
  return front


def pareto(runs: Sequence[Run], path: str,
           directions: Mapping[str, Mapping[str, bool]]) -> str:
  """Task 1 vs. task 2, one point per run, the non-dominated ones marked."""
  points, labels, higher = pareto_points(runs, directions)
  front = non_dominated(points, higher)
  fig = _figure(5.6, 4.6)
  ax = fig.subplots()
  for (name, (x, y)), color in zip(points.items(), _colors(len(points))):
    on_front = name in front
    ax.scatter([x], [y], s=110 if on_front else 45, marker="*" if on_front else "o",
               color=color, edgecolors="black", linewidths=0.6, zorder=3,
               label=name + (" (non-dominated)" if on_front else ""))
    ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 5), fontsize=8)
  ordered = sorted((points[n] for n in front), key=lambda p: p[0])
  if len(ordered) > 1:
    ax.plot(*zip(*ordered), color="gray", linestyle="--", linewidth=1, zorder=2)
  ax.set_xlabel(f"{labels[0]} ({'higher' if higher[0] else 'lower'} is better)")
  ax.set_ylabel(f"{labels[1]} ({'higher' if higher[1] else 'lower'} is better)")
  ax.grid(True, alpha=0.3)
  ax.margins(0.15)
  ax.legend(fontsize="small")
  ax.set_title("Pareto front (stars: non-dominated runs)")
  return _save(fig, path)
