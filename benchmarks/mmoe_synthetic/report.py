"""Reports of the MMoE synthetic benchmark: assembly, merging, markdown, plots.

A report is one JSON-able dict (command, settings, parameters, runs, summary
and, for the paper's protocol, the rises of :mod:`.stats`); it is written as
``<out>.json``, ``<out>.md`` (the tables, then the hand-written
``<out>.notes.md`` if there is one) and ``<out>.png``.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import numpy as np

from benchmarks.mmoe_synthetic import stats

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMMAND = "python -m benchmarks.mmoe_synthetic"
DEFAULT_MODELS = ("hard_sharing", "mmoe", "soft_sharing", "independent")
COMPARED = ("protocol", "steps", "lr", "schedule", "batch_size", "num_train",
            "num_test", "num_sines", "units")
PAPER_COMPARED = ("curve_every", "sample_every")
GATE_PARAMS = 2 * (100 * 8 + 8)  # MMoE's two softmax gates over 8 experts, d = 100
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
PER_SEED_TABLE_MAX = 20  # more seeds: quantiles instead of every run's value


# ---------------------------------------------------------------------------
# Assembly.


def command(argv) -> str:
  """The command line that reproduces a report (``argv``: its flags)."""
  return " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]).strip()


def by_rank(models_) -> list:
  """``models_`` with those of ``DEFAULT_MODELS`` first, in its order."""
  rank = {m: i for i, m in enumerate(DEFAULT_MODELS)}
  return sorted(models_, key=lambda m: (rank.get(m, len(rank)), m))


def runs_axes(runs: list) -> tuple[list, list]:
  """The models of ``runs`` (see :func:`by_rank`) and their p, high to low."""
  return by_rank({r["model"] for r in runs}), sorted({r["p"] for r in runs}, reverse=True)


def ordered(report: dict) -> tuple[list, list]:
  """The models of a report's summary (see :func:`by_rank`) and p, high to low."""
  models_ = by_rank(report["summary"])
  ps = sorted({float(p) for row in report["summary"].values() for p in row}, reverse=True)
  return models_, ps


def fixed_report(runs: list, args, params: dict, missing: list, sources: list, argv,
                 environment: dict | None = None) -> dict:
  """The report of a ``--protocol fixed`` run."""
  models_, ps = runs_axes(runs)
  summary = stats.summarise(runs, models_, ps)
  return {"command": command(argv), "args": vars(args), "environment": environment,
          "params": params, "missing": missing, "summary": summary, "runs": runs,
          "merged": sources,
          "degradation": {m: stats.degradation(summary, m, ps) for m in models_},
          "degradation_median": {m: stats.degradation(summary, m, ps, "median")
                                 for m in models_}}


def paper_report(runs: list, args, params: dict, missing: list, sources: list, argv,
                 previous: dict | None = None, environment: dict | None = None) -> dict:
  """The report of a ``--protocol paper`` run; with more than
  ``PER_SEED_TABLE_MAX`` seeds the runs keep no curves (the summary holds
  each cell's mean curve and its SE)."""
  models_, ps = runs_axes(runs)
  summary = stats.summarise_paper(runs, models_, ps, previous)
  analysis = stats.paper_analysis(runs, models_, ps)
  if len({r["seed"] for r in runs}) > PER_SEED_TABLE_MAX:
    drop = ("curve", "mean_curve", "curve_steps")
    runs = [{k: v for k, v in r.items() if k not in drop} for r in runs]
  return {"command": command(argv), "args": vars(args), "environment": environment,
          "params": params, "missing": missing, "summary": summary, **analysis,
          "runs": runs, "merged": sources}


# ---------------------------------------------------------------------------
# Merging earlier reports.


def _settings(args: dict) -> dict:
  """``args`` with the defaults of reports written before some flags existed."""
  return {"protocol": "fixed", "num_sines": 10, "schedule": "constant", **args}


def merged_summaries(paths: list) -> dict:
  """``{model: {p: cell}}`` of the reports at ``paths`` (the first report
  with a cell wins): the curves of compact reports' cells."""
  out: dict = {}
  for path in paths:
    with open(path) as f:
      summary = json.load(f).get("summary", {})
    for arch, cells in summary.items():
      for p, cell in cells.items():
        out.setdefault(arch, {}).setdefault(p, cell)
  return out


def merge(runs: list, args, paths: list) -> tuple[list, list]:
  """``runs`` plus the runs of the reports at ``paths`` that ``runs`` lacks.

  Raises:
    ValueError: if a report was trained differently (see ``COMPARED``, and
      ``PAPER_COMPARED`` for ``--protocol paper``).
  """
  new_args = _settings(vars(args))
  keys = COMPARED + (PAPER_COMPARED if new_args["protocol"] == "paper" else ())
  merged, sources = list(runs), []
  for path in paths:
    with open(path) as f:
      old = json.load(f)
    old_args = _settings(old["args"])
    diff = {k: (old_args.get(k), new_args.get(k)) for k in keys
            if old_args.get(k) != new_args.get(k)}
    if diff:
      raise ValueError(f"{path} was run with other settings (old, new): {diff}.")
    have = {(r["model"], r["p"], r["seed"]) for r in merged}
    added = [r for r in old["runs"] if (r["model"], r["p"], r["seed"]) not in have]
    merged += added
    sources.append({"path": os.path.relpath(os.path.abspath(path), ROOT),
                    "command": old["command"], "runs": len(added),
                    "environment": old.get("environment")})
    sources += old.get("merged", [])
  return merged, sources


# ---------------------------------------------------------------------------
# Markdown.


def environment_line(env: dict | None) -> str:
  """When, at which commit and on what machine load a report's runs ran."""
  if not env:
    return "Date, commit and machine load: not recorded by this run."
  return (f"Run {env.get('time')} at commit {env.get('commit')}; jax {env.get('jax')} on "
          f"{env.get('backend')}, {env.get('cpus')} CPUs, load average "
          f"{env.get('load_average')} -> {env.get('load_average_end')}.")


def _source_lines(report: dict) -> list:
  lines = ["", f"Command: `{report['command']}`"]
  for source in report.get("merged", []):
    env = source.get("environment")
    when = f"; run {env.get('time')} at commit {env.get('commit')}" if env else ""
    lines.append(f"merged with {source['runs']} runs of `{source['path']}` "
                 f"(`{source['command']}`{when})")
  return lines


def _seeds_line(summary: dict) -> str:
  counts = sorted({cell["n"] for row in summary.values() for cell in row.values()})
  return (f"{counts[0]} seeds" if len(counts) == 1
          else f"{counts[0]}-{counts[-1]} seeds (n per cell in the JSON)")


def runs_table(report: dict, key: str) -> list:
  """Markdown lines: every run's ``key``, one row per model and p."""
  models_, ps = ordered(report)
  seeds = sorted({r["seed"] for r in report["runs"]})
  value = {(r["model"], r["p"], r["seed"]): r[key] for r in report["runs"]}
  lines = ["| model | p | " + " | ".join(f"seed {s}" for s in seeds) + " |",
           "|---|---:|" + "---:|" * len(seeds)]
  for arch in models_:
    for p in ps:
      cells = [f"{value[arch, p, s]:.3f}" if (arch, p, s) in value else "" for s in seeds]
      lines.append(f"| {arch} | {p} | " + " | ".join(cells) + " |")
  return lines


def markdown(report: dict) -> str:
  """The table of a ``--protocol fixed`` report."""
  args, summary, params = report["args"], report["summary"], report["params"]
  models_, ps = ordered(report)
  lo, hi = min(ps), max(ps)
  lines = [f"# MMoE synthetic: test MSE (mean over the 2 tasks; over "
           f"{_seeds_line(summary)})", "",
           environment_line(report.get("environment")), "",
           f"{args['steps']} Adam steps (lr {args['lr']}, "
           f"{args.get('schedule') or 'constant'}), batch {args['batch_size']}, "
           f"{args['num_train']} train / {args['num_test']} test examples, d = 100.", "",
           "Each cell: mean +- std over seeds, then [median].", "",
           "| model | params | " + " | ".join(f"p = {p}" for p in ps)
           + f" | MSE(p={lo}) - MSE(p={hi}): mean | median |",
           "|---|---:|" + "---:|" * len(ps) + "---:|---:|"]
  for arch in models_:
    row = summary[arch]
    cells = [f"{row[str(p)]['mean']:.3f} +- {row[str(p)]['std']:.3f} "
             f"[{row[str(p)]['median']:.3f}]" for p in ps]
    lines.append(f"| {arch} | {params[arch]} | " + " | ".join(cells)
                 + f" | {stats.degradation(summary, arch, ps):+.3f}"
                 f" | {stats.degradation(summary, arch, ps, 'median'):+.3f} |")
  if report["missing"]:
    lines += ["", f"Not run (not in the model registry): {', '.join(report['missing'])}."]
  lines += ["", "Every run (test MSE, mean over the 2 tasks):", "",
            *runs_table(report, "mean_test_mse")]
  return "\n".join(lines + _source_lines(report))


def _gates_note(params: dict) -> str:
  if "mmoe" not in params:
    return "."
  note = f" (MMoE's include its two gates, {GATE_PARAMS:,}: without them " \
         f"{params['mmoe'] - GATE_PARAMS:,}"
  if "hard_sharing" in params:
    note += f", the shared bottom's {params['hard_sharing']:,}"
  return note + ")."


def _paper_header(report: dict, models_: list) -> list:
  args, summary, params = report["args"], report["summary"], report["params"]
  n = _seeds_line({m: {p: c["final_train"] for p, c in row.items()}
                   for m, row in summary.items()})
  return [f"# MMoE synthetic, the paper's protocol: training loss ({n}; new data "
          "and initialisation per seed)", "", environment_line(report.get("environment")),
          "",
          f"{args['steps']} Adam steps (lr {args['lr']}, "
          f"{args.get('schedule') or 'constant'}), batch {args['batch_size']}, "
          f"{args['num_train']} training / {args['num_test']} test examples, d = 100, "
          "alpha_j = j, beta_j = (j - 1)^2 "
          f"(j = 1..{args.get('num_sines', 10)}). Every run has its own data (data "
          "seed = run seed: new u1, u2, inputs, noise) and "
          f"initialisation. Experts of {args.get('units') or 16} units (8 of them), the "
          "shared bottom of the same weights. "
          "Training loss: MSE, mean over the two tasks. Curves: per "
          f"{args['curve_every']} steps, the mean of the batch losses sampled every "
          f"{args['sample_every']} steps; final: the MSE on the whole training set "
          "at the end.", "",
          "Parameters: " + ", ".join(f"{m} {params[m]:,}" for m in models_)
          + _gates_note(params)]


def _final_lines(summary: dict, models_: list, ps: list) -> list:
  lines = ["", "## Final training MSE", "",
           "Each cell: mean +- standard error over seeds, [median], (std).", "",
           "| model | " + " | ".join(f"p = {p}" for p in ps) + " |",
           "|---|" + "---:|" * len(ps)]
  for arch in models_:
    cells = []
    for p in ps:
      c = summary[arch].get(str(p), {}).get("final_train")
      cells.append("" if c is None else f"{c['mean']:.3f} +- {c['se']:.3f} "
                   f"[{c['median']:.3f}] ({c['std']:.3f})")
    lines.append(f"| {arch} | " + " | ".join(cells) + " |")
  return lines


def _rise_lines(report: dict, models_: list, hi: float, lo: float) -> list:
  lines = ["", f"## Rise of the final training MSE from p = {hi} to p = {lo}", "",
           "mean +- SE (the two cells' SEs combined); paired: mean +- SE of the "
           "per-seed differences (same seed = same u1, inputs and initialisation "
           "at both p); 95% bootstrap intervals over seeds.", "",
           "| model | rise of mean | 95% bootstrap | rise of median | 95% bootstrap "
           "| paired |", "|---|---:|---:|---:|---:|---:|"]
  for arch in models_:
    r = report["rises"].get(arch)
    if r is None:
      continue
    bm, bd = r["bootstrap_95"]["mean"], r["bootstrap_95"]["median"]
    lines.append(f"| {arch} | {r['mean']:+.3f} +- {r['se']:.3f} | [{bm[0]:+.3f}, "
                 f"{bm[1]:+.3f}] | {r['median']:+.3f} | [{bd[0]:+.3f}, {bd[1]:+.3f}] | "
                 f"{r['paired_mean']:+.3f} +- {r['paired_se']:.3f} |")
  for arch, vs in report["rises"].get("hard_sharing", {}).get("vs", {}).items():
    for stat in ("mean", "median"):
      v = vs[stat]
      lines += ["", f"Shared bottom's rise minus {arch}'s ({stat}s): "
                f"{v['estimate']:+.3f}, 95% bootstrap [{v['bootstrap_95'][0]:+.3f}, "
                f"{v['bootstrap_95'][1]:+.3f}], <= 0 in {100 * v['fraction_le_0']:.1f}% "
                "of the resamples."]
  return lines


def _rises_by_p_lines(report: dict, models_: list) -> list:
  by_p = report.get("rises_by_p") or {}
  if not by_p or "hard_sharing" not in models_ or len(models_) < 2:
    return []
  other = [m for m in models_ if m != "hard_sharing"]
  hi = max(float(p) for p in report["summary"][models_[0]])
  lines = ["", f"## Rise of the mean final training MSE from p = {hi}, at every p", "",
           "mean +- SE per model; the shared bottom's rise minus the other model's "
           "with its 95% bootstrap interval over seeds and the fraction of resamples "
           "where it is <= 0.", "",
           "| p | hard_sharing | " + " | ".join(other) + " | "
           + " | ".join(f"hard_sharing - {m}" for m in other) + " |",
           "|---:|---:|" + "---:|" * (2 * len(other))]
  for p, r in by_p.items():
    cells = [f"{r[m]['mean']:+.3f} +- {r[m]['se']:.3f}" if m in r else ""
             for m in ["hard_sharing", *other]]
    for m in other:
      v = r.get("hard_sharing", {}).get("vs", {}).get(m, {}).get("mean")
      cells.append("" if v is None else
                   f"{v['estimate']:+.3f} [{v['bootstrap_95'][0]:+.3f}, "
                   f"{v['bootstrap_95'][1]:+.3f}], <= 0: {100 * v['fraction_le_0']:.1f}%")
    lines.append(f"| {p} | " + " | ".join(cells) + " |")
  return lines


def _first_task_lines(report: dict, models_: list) -> list:
  rows = report.get("first_task_rises") or {}
  if not rows:
    return []
  ps = list(next(iter(rows.values())))
  hi = max(float(p) for p in report["summary"][models_[0]])
  return ["", f"## The first task alone: paired rise of y1's final training MSE from "
          f"p = {hi}", "",
          "y1 is the same data at every p of a seed (w1 = u1; same inputs, noise and "
          "initialisation); only the task it shares the model with changes. Mean +- SE "
          "of the per-seed differences.", "",
          "| model | " + " | ".join(f"p = {p}" for p in ps) + " |",
          "|---|" + "---:|" * len(ps)] + [
      f"| {arch} | " + " | ".join(
          f"{rows[arch][p]['mean']:+.4f} +- {rows[arch][p]['se']:.4f}" if p in rows[arch]
          else "" for p in ps) + " |" for arch in models_ if arch in rows]


def _curve_at(cell: dict, step: int) -> float:
  steps = cell["curve_steps"]
  i = min(range(len(steps)), key=lambda j: abs(steps[j] - step))
  return cell["curve_mean"][i]


def _curve_lines(report: dict, models_: list, ps: list) -> list:
  args, summary = report["args"], report["summary"]
  steps = args["steps"]
  marks = sorted({max(args["curve_every"], steps // 8), steps // 4, steps // 2, steps})
  lines = ["", "## Mean training curve (mean over seeds of the curve points)", "",
           "| model | p | " + " | ".join(f"step {m}" for m in marks) + " |",
           "|---|---:|" + "---:|" * len(marks)]
  for arch in models_:
    for p in ps:
      c = summary[arch].get(str(p))
      if c is not None and "curve_mean" in c:
        lines.append(f"| {arch} | {p} | "
                     + " | ".join(f"{_curve_at(c, m):.3f}" for m in marks) + " |")
  return lines + ["", "Test MSE at the end (mean [median]): " + "; ".join(
      f"{arch} " + ", ".join(
          f"p={p}: {summary[arch][str(p)]['test']['mean']:.3f} "
          f"[{summary[arch][str(p)]['test']['median']:.3f}]"
          for p in ps if str(p) in summary[arch]) for arch in models_) + "."]


def _distribution_lines(report: dict, models_: list, ps: list) -> list:
  """Quantiles of every cell's final training MSE (trainability: the
  paper's Fig. 5 reads it off the spread of the runs)."""
  lines = ["", "Distribution of the final training MSE over runs (quantiles; every "
           "run's value is in the JSON):", "",
           "| model | p | n | " + " | ".join(f"q{int(100 * q)}" for q in QUANTILES)
           + " |",
           "|---|---:|---:|" + "---:|" * len(QUANTILES)]
  for arch in models_:
    for p in ps:
      vals = [r["mean_final_train_mse"] for r in stats.of_cell(report["runs"], arch, p)]
      if vals:
        quantiles = " | ".join(f"{np.quantile(vals, q):.3f}" for q in QUANTILES)
        lines.append(f"| {arch} | {p} | {len(vals)} | {quantiles} |")
  return lines


def _time_lines(report: dict) -> list:
  seconds = [r["seconds"] for r in report["runs"]]
  return ["", f"Time: {len(seconds)} runs, {sum(seconds) / 60:.1f} min of training "
          f"(median {np.median(seconds):.1f} s a run; wall time, data generation and "
          "compilation included)."]


def markdown_paper(report: dict) -> str:
  """The tables of a ``--protocol paper`` report."""
  models_, ps = ordered(report)
  lines = _paper_header(report, models_)
  lines += _final_lines(report["summary"], models_, ps)
  lines += _rise_lines(report, models_, max(ps), min(ps))
  lines += _rises_by_p_lines(report, models_)
  lines += _first_task_lines(report, models_)
  lines += _curve_lines(report, models_, ps)
  lines += _distribution_lines(report, models_, ps)
  if len({r["seed"] for r in report["runs"]}) <= PER_SEED_TABLE_MAX:
    lines += ["", "Every run's final training MSE (mean over the 2 tasks):", "",
              *runs_table(report, "mean_final_train_mse")]
  return "\n".join(lines + _time_lines(report) + _source_lines(report))


# ---------------------------------------------------------------------------
# Plots.


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def plot(report: dict, path: str) -> None:
  """Test MSE against p per model: mean +- std over seeds and the median."""
  plt = _pyplot()
  summary = report["summary"]
  fig, ax = plt.subplots(figsize=(5.5, 4))
  xs = sorted(ordered(report)[1])
  for arch, row in summary.items():
    mean = [row[str(p)]["mean"] for p in xs]
    std = [row[str(p)]["std"] for p in xs]
    line = ax.errorbar(xs, mean, yerr=std, marker="o", capsize=3, label=arch)
    ax.plot(xs, [row[str(p)]["median"] for p in xs], ls="none", marker="x",
            color=line[0].get_color())
  ax.set_xlabel("task correlation p")
  ax.set_ylabel("test MSE (mean over tasks)\nmean +- std (o), median (x)")
  ax.set_title("MMoE synthetic regression")
  ax.invert_xaxis()
  ax.grid(alpha=0.3)
  ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=len(summary),
            fontsize=8, frameon=False)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_curves(ax, summary: dict, arch: str, ps: list, colors: dict) -> None:
  """One model's mean training curve per p, +- SE band."""
  for p in ps:
    c = summary[arch].get(str(p))
    if c is None or "curve_mean" not in c:
      continue
    x, m, se = (np.asarray(c[k], np.float64) for k in stats.CURVE_KEYS)
    ax.plot(x, m, color=colors[p], lw=1.2, label=f"p = {p}")
    ax.fill_between(x, m - se, m + se, color=colors[p], alpha=0.25, lw=0)
  ax.set_yscale("log")
  ax.set_title(f"{arch} (n = {c['final_train']['n']} seeds)", fontsize=10)
  ax.set_xlabel("step")
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=8)


def _plot_finals(ax, runs: list, models_: list, ps: list) -> None:
  """Every run's final training MSE against p, a bar at each cell's mean."""
  for k, arch in enumerate(models_):
    xs, ys, means = [], [], []
    for i, p in enumerate(ps):
      vals = [r["mean_final_train_mse"] for r in stats.of_cell(runs, arch, p)]
      offset = (k - (len(models_) - 1) / 2) * 0.25
      xs += [i + offset + 0.04 * (j - len(vals) / 2) / max(len(vals), 1) * 2
             for j in range(len(vals))]
      ys += vals
      means.append((i + offset, np.mean(vals) if vals else np.nan))
    line = ax.plot(xs, ys, "o", ms=3, alpha=0.6, label=arch)[0]
    ax.plot(*zip(*means), "_", ms=14, mew=2, color=line.get_color())
  ax.set_xticks(range(len(ps)), [f"p = {p}" for p in ps])
  ax.set_title("final training MSE, every run (bar: mean)", fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)


def plot_paper(report: dict, path: str) -> None:
  """One panel per model (mean training curve per p, +- SE band) and one of
  every run's final training MSE against p."""
  plt = _pyplot()
  models_, ps = ordered(report)
  fig, axes = plt.subplots(1, len(models_) + 1, figsize=(4.2 * (len(models_) + 1), 3.8))
  colors = {p: plt.cm.plasma(0.85 * i / max(len(ps) - 1, 1)) for i, p in enumerate(ps)}
  for ax in axes[1:len(models_)]:
    ax.sharey(axes[0])
  for ax, arch in zip(axes, models_):
    _plot_curves(ax, report["summary"], arch, ps, colors)
  axes[0].set_ylabel("training MSE (mean over tasks)\nmean +- SE over seeds")
  _plot_finals(axes[-1], report["runs"], models_, ps)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


# ---------------------------------------------------------------------------
# Files.


def with_notes(table: str, out: str) -> str:
  """``table`` plus the hand-written interpretation in ``out``.notes.md, if any.

  The numbers are computed; what they mean is written by whoever ran them,
  next to the result (e.g. ``results/mmoe_synthetic.notes.md``), so a rerun
  with other settings never inherits another run's conclusions.
  """
  path = out + ".notes.md"
  if not os.path.exists(path):
    return table
  with open(path) as f:
    return table + "\n\n" + f.read()


def _write(report: dict, out: str, markdown_fn, plot_fn) -> str:
  """Writes ``out``.json, .md (with the notes) and .png; returns the markdown."""
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  with open(out + ".json", "w") as f:
    json.dump(report, f, indent=1)
  table = with_notes(markdown_fn(report), out)
  with open(out + ".md", "w") as f:
    f.write(table)
  plot_fn(report, out + ".png")
  return table


def write(report: dict, out: str) -> str:
  """Writes a report of the fixed protocol (see :func:`_write`)."""
  return _write(report, out, markdown, plot)


def write_paper(report: dict, out: str) -> str:
  """Writes a paper-protocol report (see :func:`_write`)."""
  return _write(report, out, markdown_paper, plot_paper)


def render(path: str) -> dict:
  """Re-computes the summary of the report at ``path`` (a JSON) from its runs
  and re-writes its table and plot; returns the report."""
  with open(path) as f:
    report = json.load(f)
  models_, ps = ordered(report)
  out = path[:-len(".json")]
  if report["args"].get("protocol") == "paper":
    report["summary"] = stats.summarise_paper(report["runs"], models_, ps,
                                              report["summary"])
    report.update(stats.paper_analysis(report["runs"], models_, ps))
    print(write_paper(report, out))
  else:
    report["summary"] = stats.summarise(report["runs"], models_, ps)
    print(write(report, out))
  return report
