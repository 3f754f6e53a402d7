"""MMoE synthetic benchmark: test MSE vs task correlation p (Ma et al., KDD 2018).

Trains shared-bottom (``hard_sharing``), MMoE, soft sharing and independent
networks of about the same size (see ``configs/mmoe_synthetic.py``) on the
two-task synthetic regression data of ``mtl_jax.data.mmoe_synthetic`` for each
correlation p and seed, with Adam on the summed MSE, and reports the test MSE
averaged over the two tasks, then over seeds: mean +- std, median and every
seed's value (one failed run must not carry a finding).

The paper's finding: as p falls, the shared-bottom model degrades much more
than MMoE. The summary prints each model's degradation ``MSE(p_min) -
MSE(p_max)``.

Usage::

  python benchmarks/mmoe_synthetic.py            # 3 seeds x 4 p x 4 models, 8000 steps
  python benchmarks/mmoe_synthetic.py --quick    # smoke run, a few minutes on 2 cores
  python benchmarks/mmoe_synthetic.py --models hard_sharing,mmoe --ps 1,0 --seeds 5
  # 5 more seeds (3..7), merged with the runs of an earlier report:
  python benchmarks/mmoe_synthetic.py --first-seed 3 --seeds 5 \
      --merge benchmarks/results/mmoe_synthetic.json

Runs are deterministic on one machine and code version (same seed, same
numbers), so seeds can be added to a report in several invocations.

Writes ``<out>.json`` (every run and the summary), ``<out>.md`` (table) and
``<out>.png`` (test MSE vs p per model).

``--protocol paper`` runs the paper's measurement instead (its synthetic
experiments average the training-loss curves of many runs, each with newly
generated data and a new initialisation): every run draws its own dataset
(the data ``seed`` option = the run seed: new u1, u2, inputs and noise) and
initialisation, records the training loss (per task, the mean of the batch
losses sampled every ``--sample-every`` steps within each ``--curve-every``
window) and ends with the MSE on the whole training set (and the test set).
The report gives, per model and p, the mean curve +- its standard error over
seeds and the final training MSE (mean, SE, median, std), its rise from the
highest to the lowest p and a bootstrap over seeds of the difference between
the two models' rises (from the highest p to each lower p). Defaults: shared
bottom and MMoE, 4 p, 10 seeds, 8000 steps::

  python benchmarks/mmoe_synthetic.py --protocol paper
  python benchmarks/mmoe_synthetic.py --protocol paper --quick   # smoke run
  # The paper's 200 runs per cell, one process per model and core:
  taskset -c 0 python benchmarks/mmoe_synthetic.py --protocol paper --seeds 200 \
      --models hard_sharing --out /tmp/sb &
  taskset -c 1 python benchmarks/mmoe_synthetic.py --protocol paper --seeds 200 \
      --models mmoe --out /tmp/mmoe
  python benchmarks/mmoe_synthetic.py --protocol paper --seeds 0 \
      --merge /tmp/sb.json --merge /tmp/mmoe.json      # one report of both

Runs train ``--at-once`` (50) seeds at a time, the train step vmapped over
them (``benchmarks/many_seeds.py``: the same numbers as the training loop,
4.5x less CPU time); ``--at-once 0`` runs them one at a time through
:func:`mtl_jax.train.loop.train`, each (p, seed) dataset generated into a
temporary directory unless ``--data-dir`` is given (100k examples are 40 MB a
dataset; 50 seeds at once hold 2 GB).

It writes ``benchmarks/results/mmoe_synthetic_paper.{json,md,png}`` (the PNG:
the mean training curves, one panel per model, and every run's final training
MSE).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile
import time

import jax
import numpy as np
from tqdm.auto import tqdm

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "mmoe_synthetic"
DEFAULT_MODELS = ("hard_sharing", "mmoe", "soft_sharing", "independent")
PAPER_OUT = ROOT / "benchmarks" / "results" / "mmoe_synthetic_paper"
PAPER_MODELS = ("hard_sharing", "mmoe")
PAPER_STEPS = 8000
PAPER_SEEDS = 10
PAPER_AT_ONCE = 50


def load_config_module():
  spec = importlib.util.spec_from_file_location(
      "configs.mmoe_synthetic", ROOT / "configs" / "mmoe_synthetic.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def parse_args(argv=None) -> argparse.Namespace:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--protocol", choices=("fixed", "paper"), default="fixed",
                  help="fixed: one dataset per p, final test MSE (default); paper: "
                  "new data and initialisation per seed, training-loss curves")
  ap.add_argument("--models", default=None,
                  help="comma-separated architectures of configs/mmoe_synthetic.py "
                  f"(default: {','.join(DEFAULT_MODELS)}; paper: {','.join(PAPER_MODELS)})")
  ap.add_argument("--ps", default="1.0,0.9,0.5,0.0", help="task correlations")
  ap.add_argument("--seeds", type=int, default=None,
                  help=f"number of seeds (default 3; paper: {PAPER_SEEDS})")
  ap.add_argument("--first-seed", type=int, default=0,
                  help="run seeds first-seed .. first-seed + seeds - 1")
  ap.add_argument("--merge", action="append", default=[], metavar="JSON",
                  help="also report the runs of an earlier report (same protocol, "
                  "steps, lr, batch size and data sizes); repeatable")
  ap.add_argument("--steps", type=int, default=None,
                  help=f"training steps (default 8000; paper: {PAPER_STEPS})")
  ap.add_argument("--batch-size", type=int, default=128)
  ap.add_argument("--lr", type=float, default=1e-2)
  ap.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                  help="learning-rate schedule (cosine: decays to 0 at the last step)")
  ap.add_argument("--num-train", type=int, default=100000)
  ap.add_argument("--num-test", type=int, default=2000)
  ap.add_argument("--num-sines", type=int, default=10,
                  help="m, the sine terms of the targets (alpha_j = j, j = 1..m)")
  ap.add_argument("--units", type=int, default=None,
                  help="each expert's width (default 16, the paper's), the shared "
                  "bottom resized to the same weights (configs/mmoe_synthetic.py)")
  ap.add_argument("--curve-every", type=int, default=100,
                  help="paper: one training-loss curve point per this many steps")
  ap.add_argument("--sample-every", type=int, default=10,
                  help="paper: batch losses sampled every this many steps (their "
                  "mean over a --curve-every window is the curve point)")
  ap.add_argument("--at-once", type=int, default=PAPER_AT_ONCE, metavar="S",
                  help="paper: train S seeds at once, the train step vmapped over "
                  "them (benchmarks/many_seeds.py; same numbers as one run at a time, "
                  "4.5x less CPU time); 0: one run at a time through the training loop")
  ap.add_argument("--data-dir", default=None,
                  help="dataset cache (default: $MTL_JAX_DATA_DIR or ~/.cache; "
                  "paper: a temporary directory per dataset)")
  ap.add_argument("--out", default=None, help="output path prefix (default: "
                  "benchmarks/results/mmoe_synthetic, paper: ..._paper)")
  ap.add_argument("--render", default=None, metavar="JSON",
                  help="only re-write the table and plot of a previous run's JSON")
  ap.add_argument("--quick", action="store_true",
                  help="smoke run: p in {1, 0}, 1 seed (paper: 2), 2000 steps "
                  "(paper: 1000); too short to show anything")
  args = ap.parse_args(argv)
  paper = args.protocol == "paper"
  if args.models is None:
    args.models = ",".join(PAPER_MODELS if paper else DEFAULT_MODELS)
  if args.seeds is None:
    args.seeds = PAPER_SEEDS if paper else 3
  if args.steps is None:
    args.steps = PAPER_STEPS if paper else 8000
  if args.out is None:
    args.out = str(PAPER_OUT if paper else DEFAULT_OUT)
  if args.quick:
    args.ps, args.seeds, args.steps = "1.0,0.0", 2 if paper else 1, 1000 if paper else 2000
  if paper and (args.curve_every < 1 or args.sample_every < 1
                or args.curve_every % args.sample_every):
    ap.error("--curve-every must be a positive multiple of --sample-every.")
  return args


def make_config(module, arch: str, p: float, seed: int, args, data_dir=None):
  """The run's config; with ``--protocol paper`` the data seed is ``seed``."""
  units = getattr(args, "units", None)
  c = module.get_config(f"{arch},p={p},seed={seed}"
                        + (f",units={units}" if units is not None else ""))
  c.data.update(dict(num_train=args.num_train, num_test=args.num_test,
                     num_sines=getattr(args, "num_sines", 10)))
  if data_dir or args.data_dir:
    c.data.data_dir = data_dir or args.data_dir
  c.optimizer.learning_rate = args.lr
  c.optimizer.schedule = getattr(args, "schedule", "constant")
  c.train.update(dict(num_steps=args.steps, batch_size=args.batch_size,
                      log_every=max(args.steps, 1), checkpoint_every=0))
  if getattr(args, "protocol", "fixed") == "paper":
    c.data.seed = seed  # new u1, u2, inputs and noise for every run
    c.train.log_every = args.sample_every
    c.train.log_cosine = False  # no gradient-cosine probe: only the losses are read
    c.train.tensorboard = False
  return c


def count_params(config) -> int:
  from mtl_jax import data, models, tasks as tasks_lib
  tasks = tasks_lib.from_config(config.tasks)
  shape = data.input_shape(config.data)
  model = jax.eval_shape(lambda: models.params_of(models.partition(
      models.build(tasks, shape, **config.model))))
  return int(sum(math.prod(x.shape) for x in jax.tree.leaves(model)))


def run_one(config) -> dict:
  from mtl_jax.train import loop
  workdir = tempfile.mkdtemp(prefix="mmoe_synthetic_")
  try:
    t0 = time.perf_counter()
    result = loop.train(config, workdir=workdir, progress=False, eval_splits=("test",))
    seconds = time.perf_counter() - t0
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  losses = result.eval_losses["test"]
  return {"test_mse": {k: float(v) for k, v in losses.items()},
          "mean_test_mse": float(np.mean(list(losses.values()))),
          "seconds": round(seconds, 2), "steps_per_second": result.steps_per_second}


def summarise(runs: list, models_: list, ps: list) -> dict:
  """Per model and p: mean, std, median, min, max and n of the seeds' test MSE."""
  summary = {}
  for arch in models_:
    summary[arch] = {}
    for p in ps:
      values = [r["mean_test_mse"] for r in runs if r["model"] == arch and r["p"] == p]
      if values:
        summary[arch][str(p)] = {
            "mean": float(np.mean(values)), "std": float(np.std(values)),
            "median": float(np.median(values)), "min": float(np.min(values)),
            "max": float(np.max(values)), "n": len(values)}
  return summary


def degradation(summary: dict, arch: str, ps: list, stat: str = "mean") -> float:
  """``stat`` of the test MSE at the lowest p minus that at the highest p."""
  hi, lo = str(max(ps)), str(min(ps))
  return summary[arch][lo][stat] - summary[arch][hi][stat]


COMPARED = ("protocol", "steps", "lr", "schedule", "batch_size", "num_train",
            "num_test", "num_sines", "units")
PAPER_COMPARED = ("curve_every", "sample_every")


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
  new_args = dict(vars(args))
  new_args.setdefault("protocol", "fixed")  # reports from before --protocol
  new_args.setdefault("num_sines", 10)
  new_args.setdefault("schedule", "constant")
  keys = COMPARED + (PAPER_COMPARED if new_args["protocol"] == "paper" else ())
  merged, sources = list(runs), []
  for path in paths:
    with open(path) as f:
      old = json.load(f)
    old_args = dict(old["args"])
    old_args.setdefault("protocol", "fixed")
    old_args.setdefault("num_sines", 10)  # reports from before --num-sines
    old_args.setdefault("schedule", "constant")
    diff = {k: (old_args.get(k), new_args.get(k)) for k in keys
            if old_args.get(k) != new_args.get(k)}
    if diff:
      raise ValueError(f"{path} was run with other settings (old, new): {diff}.")
    have = {(r["model"], r["p"], r["seed"]) for r in merged}
    added = [r for r in old["runs"] if (r["model"], r["p"], r["seed"]) not in have]
    merged += added
    sources.append({"path": os.path.relpath(os.path.abspath(path), ROOT),
                    "command": old["command"], "runs": len(added)})
    sources += old.get("merged", [])
  return merged, sources




def _seeds_line(summary: dict) -> str:
  counts = sorted({cell["n"] for row in summary.values() for cell in row.values()})
  return (f"{counts[0]} seeds" if len(counts) == 1
          else f"{counts[0]}-{counts[-1]} seeds (n per cell in the JSON)")


def _by_rank(models_) -> list:
  """``models_`` with those of ``DEFAULT_MODELS`` first, in its order."""
  rank = {m: i for i, m in enumerate(DEFAULT_MODELS)}
  return sorted(models_, key=lambda m: (rank.get(m, len(rank)), m))


def _ordered(report: dict) -> tuple[list, list]:
  """Models (see :func:`_by_rank`) and p from high to low."""
  models_ = _by_rank(report["summary"])
  ps = sorted({float(p) for row in report["summary"].values() for p in row}, reverse=True)
  return models_, ps


def per_seed_table(report: dict) -> list:
  """Markdown lines: every run's test MSE, one row per model and p."""
  models_, ps = _ordered(report)
  seeds = sorted({r["seed"] for r in report["runs"]})
  value = {(r["model"], r["p"], r["seed"]): r["mean_test_mse"] for r in report["runs"]}
  lines = ["| model | p | " + " | ".join(f"seed {s}" for s in seeds) + " |",
           "|---|---:|" + "---:|" * len(seeds)]
  for arch in models_:
    for p in ps:
      cells = [f"{value[arch, p, s]:.3f}" if (arch, p, s) in value else "" for s in seeds]
      lines.append(f"| {arch} | {p} | " + " | ".join(cells) + " |")
  return lines


def markdown(report: dict) -> str:
  args, summary, params = report["args"], report["summary"], report["params"]
  models_, ps = _ordered(report)
  lo, hi = min(ps), max(ps)
  lines = [f"# MMoE synthetic: test MSE (mean over the 2 tasks; over "
           f"{_seeds_line(summary)})", "",
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
                 + f" | {degradation(summary, arch, ps):+.3f}"
                 f" | {degradation(summary, arch, ps, 'median'):+.3f} |")
  if report["missing"]:
    lines += ["", f"Not run (not in the model registry): {', '.join(report['missing'])}."]
  lines += ["", "Every run (test MSE, mean over the 2 tasks):", "", *per_seed_table(report)]
  lines += ["", f"Command: `{report['command']}`"]
  for source in report.get("merged", []):
    lines.append(f"merged with {source['runs']} runs of `{source['path']}` "
                 f"(`{source['command']}`)")
  return "\n".join(lines)


def plot(summary: dict, ps: list, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(5.5, 4))
  xs = sorted(ps)
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


def _with_notes(table: str, out: str) -> str:
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
  table = _with_notes(markdown_fn(report), out)
  with open(out + ".md", "w") as f:
    f.write(table)
  plot_fn(report, out + ".png")
  return table


def write(report: dict, out: str) -> str:
  """Writes a report of the default protocol (see :func:`_write`)."""
  return _write(report, out, markdown,
                lambda r, path: plot(r["summary"], _ordered(r)[1], path))


# ---------------------------------------------------------------------------
# --protocol paper: new data and initialisation per run, training-loss curves.


def _sig(x: float, digits: int = 5) -> float:
  """``x`` rounded to ``digits`` significant digits (a smaller JSON)."""
  return float(f"{float(x):.{digits}g}")


def read_train_records(path: str) -> list:
  """The ``train`` records of a run's ``metrics.jsonl``."""
  with open(path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  return [r for r in records if r.get("split") == "train"]


def training_curve(records: list, tasks, every: int) -> tuple[list, dict]:
  """Per-task training-loss curve from the sampled batch losses.

  Args:
    records: ``train`` records (``step``, ``loss/<task>``) of one run.
    tasks: the task names.
    every: the window length in steps.

  Returns:
    ``(steps, {task: [mean loss]})``: point ``k`` is the mean of the batch
    losses of the records with step in ``((k - 1) * every, k * every]``, at
    step ``min(k * every, last step)``.
  """
  windows = {}
  for r in records:
    windows.setdefault(-(-int(r["step"]) // every), []).append(r)
  last = max((int(r["step"]) for r in records), default=0)
  steps, curve = [], {t: [] for t in tasks}
  for k in sorted(windows):
    steps.append(min(k * every, last))
    for t in tasks:  # non-finite losses are logged as strings ("nan")
      curve[t].append(float(np.mean([float(r[f"loss/{t}"]) for r in windows[k]])))
  return steps, curve


def _paper_run(records: list, tasks, final_train: dict, test: dict, *, curve_every: int,
               seconds: float, steps_per_second: float) -> dict:
  """A paper-protocol run's record from its logged batch losses and its final
  MSE per task on the training and test sets."""
  steps, curve = training_curve(records, tasks, curve_every)
  mean_curve = np.mean([curve[t] for t in tasks], axis=0)
  return {"final_train_mse": {t: _sig(final_train[t]) for t in tasks},
          "mean_final_train_mse": _sig(np.mean([final_train[t] for t in tasks])),
          "test_mse": {t: _sig(test[t]) for t in tasks},
          "mean_test_mse": _sig(np.mean([test[t] for t in tasks])),
          "curve_steps": steps,
          "curve": {t: [_sig(v, 4) for v in curve[t]] for t in tasks},
          "mean_curve": [_sig(v, 4) for v in mean_curve],
          "seconds": round(seconds, 2), "steps_per_second": steps_per_second}


def run_paper_one(config, curve_every: int) -> dict:
  """One paper-protocol run through the loop: training curve, final train
  and test MSE."""
  from mtl_jax.train import loop
  workdir = tempfile.mkdtemp(prefix="mmoe_synthetic_paper_")
  try:
    t0 = time.perf_counter()
    result = loop.train(config, workdir=workdir, progress=False,
                        eval_splits=("train", "test"))
    seconds = time.perf_counter() - t0
    records = read_train_records(os.path.join(workdir, "metrics.jsonl"))
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  return _paper_run(records, sorted(result.eval_losses["train"]),
                    result.eval_losses["train"], result.eval_losses["test"],
                    curve_every=curve_every, seconds=seconds,
                    steps_per_second=result.steps_per_second)


def _logged_steps(num_steps: int, every: int) -> list[int]:
  """The steps the loop logs with ``train.log_every = every`` (1-based)."""
  return sorted(set(range(every, num_steps + 1, every)) | {num_steps})


def paper_record(losses: np.ndarray, tasks, final_train, test, *, curve_every: int,
                 sample_every: int, seconds: float, steps_per_second: float) -> dict:
  """A paper-protocol run's record (as :func:`run_paper_one` makes) from its
  ``[steps, T]`` batch losses and its final ``[T]`` train and test MSE: the
  losses of the steps the loop would log."""
  records = [{"step": k, **{f"loss/{t}": float(losses[k - 1, i])
                            for i, t in enumerate(tasks)}}
             for k in _logged_steps(len(losses), sample_every)]
  return _paper_run(records, tasks, dict(zip(tasks, final_train)), dict(zip(tasks, test)),
                    curve_every=curve_every, seconds=seconds,
                    steps_per_second=steps_per_second)


def data_options(config) -> dict:
  """The dataset options of a run's config (for ``mmoe_synthetic.generate``):
  the builder's, as the data pipeline resolves them."""
  from mtl_jax import data
  from mtl_jax.data import base
  return base.resolve_options(data.get_spec(config.data.name), config.data)


def run_paper_seeds(trainers: dict, configs: dict, seeds: list, ps: list, args) -> list:
  """Paper-protocol runs of ``seeds`` at every p and model, the seeds trained
  at once (:class:`many_seeds.ManySeeds` per model in ``trainers``).

  Each seed's data are drawn once for all p (the same inputs, noise and
  ``u1, u2`` that a run at any p of that seed reads through the loop).
  """
  from mtl_jax.data import mmoe_synthetic
  any_config = next(iter(configs.values()))
  split_data = {split: [mmoe_synthetic.generate_correlations(
      dict(data_options(any_config), seed=seed), split, ps) for seed in seeds]
      for split in ("train", "test")}
  runs, put = [], next(iter(trainers.values())).put  # the models share the tasks
  for i, p in enumerate(ps):
    train = put([per_p[i] for per_p in split_data["train"]])
    test = put([per_p[i] for per_p in split_data["test"]])
    for arch, trainer in trainers.items():
      t0 = time.perf_counter()
      batch = trainer.train(seeds, train)
      final, test_mse = trainer.evaluate(batch, train), trainer.evaluate(batch, test)
      seconds = time.perf_counter() - t0
      for j, seed in enumerate(seeds):
        out = paper_record(batch.losses[:, j], trainer.task_names, final[j], test_mse[j],
                           curve_every=args.curve_every, sample_every=args.sample_every,
                           seconds=seconds / len(seeds),
                           steps_per_second=len(seeds) * args.steps / seconds)
        runs.append(dict(model=arch, p=p, seed=seed, data_seed=seed, **out))
      finals = np.mean(final, axis=1)
      tqdm.write(f"p={p} {arch:13s} seeds {seeds[0]}..{seeds[-1]}: final train MSE "
                 f"median {np.median(finals):.4f} ({seconds:.1f}s)")
  return runs


def _stats(values) -> dict:
  """Mean, standard error (ddof 1), std (ddof 1), median, min, max, n."""
  v = np.asarray(values, np.float64)
  std = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
  return {"mean": float(np.mean(v)), "se": std / math.sqrt(len(v)), "std": std,
          "median": float(np.median(v)), "min": float(np.min(v)),
          "max": float(np.max(v)), "n": len(v)}


CURVE_KEYS = ("curve_steps", "curve_mean", "curve_se")


def _curve_summary(cell: list) -> dict:
  """Mean training curve of a cell's runs and its standard error."""
  curves = np.array([r["mean_curve"] for r in cell], np.float64)
  n = len(cell)
  sem = (np.std(curves, axis=0, ddof=1) / math.sqrt(n) if n > 1
         else np.zeros(curves.shape[1]))
  return {"curve_steps": cell[0]["curve_steps"],
          "curve_mean": [_sig(v, 4) for v in curves.mean(axis=0)],
          "curve_se": [_sig(v, 3) for v in sem]}


def summarise_paper(runs: list, models_: list, ps: list,
                    previous: dict | None = None) -> dict:
  """Per model and p: statistics of the final train / test MSE over seeds,
  and the mean training curve with its standard error.

  Runs of a compact report (:func:`_paper_report` with many seeds) carry no
  curves; a cell whose runs lack them keeps the curve of ``previous`` (the
  summary of a report of the same runs: the one re-rendered, or the merged
  report that holds the whole cell), else has none.
  """
  summary = {}
  for arch in models_:
    summary[arch] = {}
    for p in ps:
      cell = [r for r in runs if r["model"] == arch and r["p"] == p]
      if not cell:
        continue
      tasks = sorted(cell[0]["final_train_mse"])
      out = summary[arch][str(p)] = {
          "final_train": _stats([r["mean_final_train_mse"] for r in cell]),
          "final_train_tasks": {t: _stats([r["final_train_mse"][t] for r in cell])
                                for t in tasks},
          "test": _stats([r["mean_test_mse"] for r in cell])}
      if all("mean_curve" in r for r in cell):
        out.update(_curve_summary(cell))
      else:  # a summary of these very runs (the same count) kept their curve
        old = (previous or {}).get(arch, {}).get(str(p), {})
        if old.get("final_train", {}).get("n") == len(cell):
          out.update({k: old[k] for k in CURVE_KEYS if k in old})
  return summary


def _final(runs: list, arch: str, p: float) -> dict:
  """seed -> mean final training MSE of ``arch`` at ``p``."""
  return {r["seed"]: r["mean_final_train_mse"] for r in runs
          if r["model"] == arch and r["p"] == p}


def rises(runs: list, models_: list, ps: list, *, num_bootstrap: int = 10000,
          seed: int = 0) -> dict:
  """The rise of the final training MSE from the highest to the lowest p.

  Per model: the rise of the mean (with its standard error, the two cells'
  SEs combined), of the median, the mean of the per-seed (paired: same data
  seed, so the same u1, inputs and initialisation at both p) differences
  with its SE, and 95% bootstrap intervals of the mean and median rises
  (seeds resampled with replacement in each cell). With ``hard_sharing``
  among the models: the bootstrap distribution of its rise minus each other
  model's (``vs``), with the fraction of resamples where it is <= 0.
  """
  hi, lo = max(ps), min(ps)
  rng = np.random.default_rng(seed)
  out, boot = {}, {}
  for arch in models_:
    a, b = _final(runs, arch, hi), _final(runs, arch, lo)
    if not a or not b:
      continue
    va, vb = np.array(list(a.values())), np.array(list(b.values()))
    sa, sb = _stats(va), _stats(vb)
    paired = [b[s] - a[s] for s in sorted(set(a) & set(b))]
    ia = rng.integers(0, len(va), (num_bootstrap, len(va)))
    ib = rng.integers(0, len(vb), (num_bootstrap, len(vb)))
    boot[arch] = {"mean": vb[ib].mean(1) - va[ia].mean(1),
                  "median": np.median(vb[ib], 1) - np.median(va[ia], 1)}
    out[arch] = {
        "p_high": hi, "p_low": lo,
        "mean": sb["mean"] - sa["mean"], "se": math.hypot(sa["se"], sb["se"]),
        "median": sb["median"] - sa["median"],
        "paired_mean": float(np.mean(paired)) if paired else float("nan"),
        "paired_se": _stats(paired)["se"] if len(paired) > 1 else float("nan"),
        "bootstrap_95": {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]
                         for k, v in boot[arch].items()}}
  if "hard_sharing" in boot:
    for arch in boot:
      if arch == "hard_sharing":
        continue
      vs = {}
      for stat in ("mean", "median"):
        diff = boot["hard_sharing"][stat] - boot[arch][stat]
        vs[stat] = {"estimate": float(out["hard_sharing"][stat] - out[arch][stat]),
                    "bootstrap_95": [float(np.percentile(diff, 2.5)),
                                     float(np.percentile(diff, 97.5))],
                    "fraction_le_0": float(np.mean(diff <= 0))}
      out["hard_sharing"].setdefault("vs", {})[arch] = vs
  return out




def rises_by_p(runs: list, models_: list, ps: list) -> dict:
  """:func:`rises` from the highest p to each lower p: ``{str(p): rises}``."""
  hi = max(ps)
  return {str(p): rises(runs, models_, [hi, p]) for p in sorted(ps, reverse=True)
          if p != hi}


def first_task_rises(runs: list, models_: list, ps: list, task: str = "y1") -> dict:
  """Paired rise of one task's final training MSE from the highest p.

  ``w1 = c u1`` at every p, and a seed's inputs, noise and initialisation do
  not depend on p: the first task's data are the same at every p of a seed,
  and only its companion task changes. So the per-seed difference of its
  MSE between p and the highest p is the cost, for that one target, of
  sharing the model with a less related task (negative transfer), free of
  the run-to-run spread of the data. ``{model: {str(p): stats}}``.
  """
  hi = max(ps)
  out = {}
  for arch in models_:
    base = {r["seed"]: r["final_train_mse"][task] for r in runs
            if r["model"] == arch and r["p"] == hi}
    for p in sorted(ps, reverse=True):
      if p == hi:
        continue
      diffs = [r["final_train_mse"][task] - base[r["seed"]] for r in runs
               if r["model"] == arch and r["p"] == p and r["seed"] in base]
      if len(diffs) > 1:
        out.setdefault(arch, {})[str(p)] = _stats(diffs)
  return out


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


QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
PER_SEED_TABLE_MAX = 20  # more seeds: quantiles instead of every run's value


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


def _distribution_lines(report: dict, models_: list, ps: list) -> list:
  """Quantiles of every cell's final training MSE (trainability: the
  paper's Fig. 5 reads it off the spread of the runs)."""
  lines = ["", "Distribution of the final training MSE over runs (quantiles; every "
           "run's value is in the JSON):", "",
           "| model | p | n | " + " | ".join(f"q{int(100 * q)}" for q in QUANTILES) + " |",
           "|---|---:|---:|" + "---:|" * len(QUANTILES)]
  for arch in models_:
    for p in ps:
      vals = [r["mean_final_train_mse"] for r in report["runs"]
              if r["model"] == arch and r["p"] == p]
      if vals:
        lines.append(f"| {arch} | {p} | {len(vals)} | "
                     + " | ".join(f"{np.quantile(vals, q):.3f}" for q in QUANTILES) + " |")
  return lines


def _curve_at(cell: dict, step: int) -> float:
  steps = cell["curve_steps"]
  i = min(range(len(steps)), key=lambda j: abs(steps[j] - step))
  return cell["curve_mean"][i]


GATE_PARAMS = 2 * (100 * 8 + 8)  # MMoE's two softmax gates over 8 experts, d = 100


def _gates_note(params: dict) -> str:
  if "mmoe" not in params:
    return "."
  note = f" (MMoE's include its two gates, {GATE_PARAMS:,}: without them " \
         f"{params['mmoe'] - GATE_PARAMS:,}"
  if "hard_sharing" in params:
    note += f", the shared bottom's {params['hard_sharing']:,}"
  return note + ")."


def markdown_paper(report: dict) -> str:
  args, summary, params = report["args"], report["summary"], report["params"]
  models_, ps = _ordered(report)
  hi, lo = max(ps), min(ps)
  n = _seeds_line({m: {p: c["final_train"] for p, c in row.items()}
                   for m, row in summary.items()})
  lines = [f"# MMoE synthetic, the paper's protocol: training loss ({n}; new data "
           "and initialisation per seed)", "",
           f"{args['steps']} Adam steps (lr {args['lr']}, "
           f"{args.get('schedule') or 'constant'}), batch {args['batch_size']}, "
           f"{args['num_train']} training / {args['num_test']} test examples, d = 100, "
           f"alpha_j = j, beta_j = (j - 1)^2 (j = 1..{args.get('num_sines', 10)}). Every run has its own data "
           "(data seed = run seed: new u1, u2, inputs, noise) and initialisation. "
           f"Experts of {args.get('units') or 16} units (8 of them), the shared "
           "bottom of the same weights. "
           "Training loss: MSE, mean over the two tasks. Curves: per "
           f"{args['curve_every']} steps, the mean of the batch losses sampled every "
           f"{args['sample_every']} steps; final: the MSE on the whole training set "
           "at the end.", "",
           "Parameters: " + ", ".join(f"{m} {params[m]:,}" for m in models_)
           + _gates_note(params), "",
           "## Final training MSE", "",
           "Each cell: mean +- standard error over seeds, [median], (std).", "",
           "| model | " + " | ".join(f"p = {p}" for p in ps) + " |",
           "|---|" + "---:|" * len(ps)]
  for arch in models_:
    cells = []
    for p in ps:
      c = summary[arch].get(str(p))
      cells.append("" if c is None else
                   f"{c['final_train']['mean']:.3f} +- {c['final_train']['se']:.3f} "
                   f"[{c['final_train']['median']:.3f}] ({c['final_train']['std']:.3f})")
    lines.append(f"| {arch} | " + " | ".join(cells) + " |")
  lines += ["", f"## Rise of the final training MSE from p = {hi} to p = {lo}", "",
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
      lines.append("")
      lines.append(f"Shared bottom's rise minus {arch}'s ({stat}s): "
                   f"{v['estimate']:+.3f}, 95% bootstrap [{v['bootstrap_95'][0]:+.3f}, "
                   f"{v['bootstrap_95'][1]:+.3f}], <= 0 in {100 * v['fraction_le_0']:.1f}% "
                   "of the resamples.")
  lines += _rises_by_p_lines(report, models_)
  lines += _first_task_lines(report, models_)
  steps = args["steps"]
  marks = sorted({max(args["curve_every"], steps // 8), steps // 4, steps // 2, steps})
  lines += ["", "## Mean training curve (mean over seeds of the curve points)", "",
            "| model | p | " + " | ".join(f"step {m}" for m in marks) + " |",
            "|---|---:|" + "---:|" * len(marks)]
  for arch in models_:
    for p in ps:
      c = summary[arch].get(str(p))
      if c is not None and "curve_mean" in c:
        lines.append(f"| {arch} | {p} | "
                     + " | ".join(f"{_curve_at(c, m):.3f}" for m in marks) + " |")
  lines += ["", "Test MSE at the end (mean [median]): "
            + "; ".join(f"{arch} " + ", ".join(
                f"p={p}: {summary[arch][str(p)]['test']['mean']:.3f} "
                f"[{summary[arch][str(p)]['test']['median']:.3f}]"
                for p in ps if str(p) in summary[arch]) for arch in models_) + "."]
  seeds = sorted({r["seed"] for r in report["runs"]})
  lines += _distribution_lines(report, models_, ps)
  if len(seeds) <= PER_SEED_TABLE_MAX:
    value = {(r["model"], r["p"], r["seed"]): r["mean_final_train_mse"]
             for r in report["runs"]}
    lines += ["", "Every run's final training MSE (mean over the 2 tasks):", "",
              "| model | p | " + " | ".join(f"seed {s}" for s in seeds) + " |",
              "|---|---:|" + "---:|" * len(seeds)]
    for arch in models_:
      for p in ps:
        cells = [f"{value[arch, p, s]:.3f}" if (arch, p, s) in value else ""
                 for s in seeds]
        lines.append(f"| {arch} | {p} | " + " | ".join(cells) + " |")
  seconds = [r["seconds"] for r in report["runs"]]
  lines += ["", f"Time: {len(seconds)} runs, {sum(seconds) / 60:.1f} min of training "
            f"(median {np.median(seconds):.1f} s a run; wall time, data generation and "
            "compilation included).", "",
            f"Command: `{report['command']}`"]
  for source in report.get("merged", []):
    lines.append(f"merged with {source['runs']} runs of `{source['path']}` "
                 f"(`{source['command']}`)")
  return "\n".join(lines)


def plot_paper(report: dict, path: str) -> None:
  """One panel per model (mean training curve per p, +- SE band) and one of
  every run's final training MSE against p."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  summary = report["summary"]
  models_, ps = _ordered(report)
  fig, axes = plt.subplots(1, len(models_) + 1, figsize=(4.2 * (len(models_) + 1), 3.8))
  colors = {p: plt.cm.plasma(0.85 * i / max(len(ps) - 1, 1)) for i, p in enumerate(ps)}
  for ax in axes[1:len(models_)]:
    ax.sharey(axes[0])
  for ax, arch in zip(axes, models_):
    for p in ps:
      c = summary[arch].get(str(p))
      if c is None or "curve_mean" not in c:
        continue
      x, m, se = (np.asarray(c[k], np.float64) for k in ("curve_steps", "curve_mean",
                                                         "curve_se"))
      ax.plot(x, m, color=colors[p], lw=1.2, label=f"p = {p}")
      ax.fill_between(x, m - se, m + se, color=colors[p], alpha=0.25, lw=0)
    ax.set_yscale("log")
    ax.set_title(f"{arch} (n = {c['final_train']['n']} seeds)", fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
  axes[0].set_ylabel("training MSE (mean over tasks)\nmean +- SE over seeds")
  ax = axes[-1]
  for k, arch in enumerate(models_):
    xs, ys, means = [], [], []
    for i, p in enumerate(ps):
      vals = [r["mean_final_train_mse"] for r in report["runs"]
              if r["model"] == arch and r["p"] == p]
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
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_paper(report: dict, out: str) -> str:
  """Writes a paper-protocol report (see :func:`_write`)."""
  return _write(report, out, markdown_paper, plot_paper)


def _paper_report(runs: list, args, params: dict, missing: list, sources: list,
                  argv, previous: dict | None = None) -> dict:
  models_ = _by_rank({r["model"] for r in runs})
  ps = sorted({r["p"] for r in runs}, reverse=True)
  command = " ".join(["python benchmarks/mmoe_synthetic.py",
                      *(argv if argv is not None else sys.argv[1:])])
  summary = summarise_paper(runs, models_, ps, previous)
  if len({r["seed"] for r in runs}) > PER_SEED_TABLE_MAX:
    # Keep the JSON small: the curves live in the summary (mean and SE per
    # cell); the runs keep their final values.
    runs = [{k: v for k, v in r.items() if k not in ("curve", "mean_curve", "curve_steps")}
            for r in runs]
  return {"command": command.strip(), "args": vars(args), "params": params,
          "missing": missing, "summary": summary,
          "rises": rises(runs, models_, ps), "rises_by_p": rises_by_p(runs, models_, ps),
          "first_task_rises": first_task_rises(runs, models_, ps),
          "runs": runs, "merged": sources}


def _plan(args):
  """``(config module, models to run, models missing from the registry, ps,
  parameters per model)`` from the command line."""
  from mtl_jax import models
  module = load_config_module()
  requested = [m.strip() for m in args.models.split(",") if m.strip()]
  missing = [m for m in requested if module._model(m)["arch"] not in models.REGISTRY]
  models_ = [m for m in requested if m not in missing]
  ps = [float(p) for p in args.ps.split(",")]
  params = {m: count_params(make_config(module, m, ps[0], 0, args)) for m in models_}
  return module, models_, missing, ps, params


def _paper_runs_one_at_a_time(module, models_, ps, seeds, args) -> list:
  """Every run through the training loop, one dataset per (p, seed)."""
  runs = []
  cells = [(p, seed) for p in ps for seed in seeds]
  bar = tqdm(total=len(cells) * len(models_), desc="mmoe_synthetic paper", unit="run",
             disable=None)
  for p, seed in cells:
    # One dataset per (p, seed), shared by the models, then deleted.
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="mmoe_synthetic_data_")
    try:
      for arch in models_:
        out = run_paper_one(make_config(module, arch, p, seed, args, data_dir),
                            args.curve_every)
        runs.append(dict(model=arch, p=p, seed=seed, data_seed=seed, **out))
        tqdm.write(f"p={p} {arch:13s} seed={seed} final train MSE "
                   f"{out['mean_final_train_mse']:.4f} test {out['mean_test_mse']:.4f} "
                   f"({out['seconds']:.1f}s)")
        bar.update(1)
    finally:
      if not args.data_dir:
        shutil.rmtree(data_dir, ignore_errors=True)
  bar.close()
  return runs


def _paper_runs_at_once(module, models_, ps, seeds, args) -> list:
  """The runs ``args.at_once`` seeds at a time, vmapped (benchmarks/many_seeds.py)."""
  if not len(seeds):  # only merging earlier reports
    return []
  sys.path.insert(0, str(ROOT / "benchmarks"))
  from many_seeds import ManySeeds
  configs = {arch: make_config(module, arch, ps[0], seeds[0], args) for arch in models_}
  trainers = {arch: ManySeeds(c) for arch, c in configs.items()}
  runs, seeds = [], list(seeds)
  for start in tqdm(range(0, len(seeds), args.at_once), desc="mmoe_synthetic paper",
                    unit="batch", disable=None):
    runs += run_paper_seeds(trainers, configs, seeds[start:start + args.at_once], ps, args)
  return runs


def main_paper(args, argv=None) -> dict:
  """``--protocol paper``: every run with its own data and initialisation."""
  module, models_, missing, ps, params = _plan(args)
  seeds = range(args.first_seed, args.first_seed + args.seeds)
  t0 = time.perf_counter()
  collect = _paper_runs_at_once if args.at_once > 0 else _paper_runs_one_at_a_time
  runs = collect(module, models_, ps, seeds, args)
  print(f"{len(runs)} runs in {(time.perf_counter() - t0) / 60:.1f} min")
  runs, sources = merge(runs, args, args.merge)
  for m in {r["model"] for r in runs}:
    params.setdefault(m, count_params(make_config(module, m, ps[0], 0, args)))
  report = _paper_report(runs, args, params, missing, sources, argv,
                         merged_summaries(args.merge))
  print(write_paper(report, args.out))
  return report


def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.render:
    with open(args.render) as f:
      report = json.load(f)
    models_, ps = _ordered(report)
    if report["args"].get("protocol") == "paper":
      report["summary"] = summarise_paper(report["runs"], models_, ps, report["summary"])
      report["rises"] = rises(report["runs"], models_, ps)
      report["rises_by_p"] = rises_by_p(report["runs"], models_, ps)
      report["first_task_rises"] = first_task_rises(report["runs"], models_, ps)
      print(write_paper(report, args.render[:-len(".json")]))
      return report
    report["summary"] = summarise(report["runs"], models_, ps)
    print(write(report, args.render[:-len(".json")]))
    return report
  if args.protocol == "paper":
    return main_paper(args, argv)
  module, models_, missing, ps, params = _plan(args)
  runs = []
  seeds = range(args.first_seed, args.first_seed + args.seeds)
  grid = [(p, arch, seed) for p in ps for arch in models_ for seed in seeds]
  for p, arch, seed in tqdm(grid, desc="mmoe_synthetic", unit="run", disable=None):
    out = run_one(make_config(module, arch, p, seed, args))
    runs.append(dict(model=arch, p=p, seed=seed, **out))
    tqdm.write(f"p={p} {arch:13s} seed={seed} test MSE {out['mean_test_mse']:.4f} "
               f"({out['seconds']:.1f}s)")
  runs, sources = merge(runs, args, args.merge)
  models_ = _by_rank({r["model"] for r in runs})
  ps = sorted({r["p"] for r in runs}, reverse=True)
  for m in models_:
    params.setdefault(m, count_params(make_config(module, m, ps[0], 0, args)))
  summary = summarise(runs, models_, ps)
  command = " ".join(["python benchmarks/mmoe_synthetic.py",
                      *(argv if argv is not None else sys.argv[1:])])
  report = {"command": command.strip(), "args": vars(args), "params": params,
            "missing": missing, "summary": summary, "runs": runs, "merged": sources,
            "degradation": {m: degradation(summary, m, ps) for m in models_},
            "degradation_median": {m: degradation(summary, m, ps, "median")
                                   for m in models_}}
  print(write(report, args.out))
  return report


if __name__ == "__main__":
  main()
