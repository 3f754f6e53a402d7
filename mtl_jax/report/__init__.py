"""``mtl-jax report``: a markdown report with PNG figures from run directories.

``render(["runs/cmp"])`` reads train run directories (``metrics.jsonl``,
``config.json`` or the checkpoint meta) and ``mtl-jax compare`` directories
(``compare.json`` plus one run per label) and writes ``report.md`` with
``figures/*.png`` beside it:

1. Runs: method, model and schedule of each run.
2. Metrics: per-task metrics on the evaluation split, one column per run,
   with Delta_m% against the single-task baseline when there is one.
3. Training curves: ``loss/<task>`` vs. step, all runs overlaid.
4. Task weights: ``weight/<task>`` and ``agg_weight/<task>`` per run.
5. Gradient cosine: heat maps (mean and final) and lines over time of the
   ``cos/<a>/<b>`` records, per run.
6. Pareto front (2-task runs): task 1 vs. task 2, one point per run.
7. Config: each run's full config.

A figure without data is replaced by a line saying why.

Example::

  from mtl_jax import report
  path = report.render(["runs/cmp"], out="runs/cmp")  # -> runs/cmp/report.md
"""

from __future__ import annotations

import os
import re
from typing import Callable, Optional, Sequence

from tqdm.auto import tqdm

from mtl_jax.report import figures, markdown
from mtl_jax.report.runs import Run, load

__all__ = ["render", "load", "Run"]

FIGURES_DIR = "figures"


def _slug(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"


def _jobs(runs: Sequence[Run], dirs: dict) -> list[tuple[str, str, tuple, Callable]]:
  """``(section, title, file names, draw(paths))`` for every figure group."""
  jobs = [("curves", "Training loss per task", ("loss.png",),
           lambda p: figures.loss_curves(runs, p[0]))]
  for run in runs:
    slug = _slug(run.name)
    jobs += [
        ("weights", f"{run.name}: task weights", (f"{slug}-weights.png",),
         lambda p, r=run: figures.weights(r, p[0])),
        ("cosine", f"{run.name}: gradient cosine",
         (f"{slug}-cos-matrix.png", f"{slug}-cos-steps.png"),
         lambda p, r=run: (figures.cosine_heatmap(r, p[0]), figures.cosine_lines(r, p[1]))),
    ]
  jobs.append(("pareto", "Pareto front", ("pareto.png",),
               lambda p: figures.pareto(runs, p[0], dirs)))
  return jobs


def _draw(jobs, out: str, progress: Optional[bool]) -> list[tuple[str, object]]:
  """Runs the figure jobs: ``("ok", relative paths)`` or ``("skip", why)``."""
  os.makedirs(os.path.join(out, FIGURES_DIR), exist_ok=True)
  results = []
  bar = tqdm(jobs, desc="report", unit="figure", dynamic_ncols=True,
             disable=None if progress is None else not progress)
  for _, _, filenames, draw in bar:
    rel = [f"{FIGURES_DIR}/{name}" for name in filenames]
    try:
      draw([os.path.join(out, r) for r in rel])
      results.append(("ok", rel))
    except figures.NoData as e:
      results.append(("skip", str(e)))
  return results


SECTIONS = (
    ("curves", "Training curves"),
    ("weights", "Task weights"),
    ("cosine", "Gradient cosine similarity"),
    ("pareto", "Pareto front"),
)


def compose(runs: Sequence[Run], split: str, out: str, jobs, results) -> str:
  """The whole ``report.md`` text."""
  dirs = markdown.directions(runs)
  table, notes = markdown.metrics_table(runs, split, dirs)
  parts = ["# mtl_jax report: " + ", ".join(f"`{r.name}`" for r in runs),
           "Written by `mtl-jax report`.",
           "## Runs", markdown.runs_table(runs, out),
           f"## Per-task `{split}` metrics"]
  parts += [p for p in (table, "\n".join(f"- {n}" for n in notes)) if p]
  for section, heading in SECTIONS:
    parts.append(f"## {heading}")
    parts += [markdown.figure(title, result) for (sec, title, _, _), result
              in zip(jobs, results) if sec == section]
  parts += ["## Config", markdown.config_section(runs)]
  return "\n\n".join(parts) + "\n"


def render(run_dirs: Sequence[str], out: Optional[str] = None, *, split: str = "test",
           progress: Optional[bool] = None) -> str:
  """Writes ``report.md`` and its figures; returns the path of ``report.md``.

  Args:
    run_dirs: train run directories and/or ``mtl-jax compare`` directories.
    out: output directory (default: the first run directory).
    split: evaluation split of the metric table (a compare directory's own
      split takes precedence).
    progress: show a progress bar over the figures (default: on a terminal).
  """
  if not run_dirs:
    raise ValueError("mtl-jax report: give at least one run directory.")
  out = out or run_dirs[0]
  runs, split = load(run_dirs, split)
  jobs = _jobs(runs, markdown.directions(runs))
  results = _draw(jobs, out, progress)
  path = os.path.join(out, "report.md")
  with open(path, "w") as f:
    f.write(compose(runs, split, out, jobs, results))
  return path
