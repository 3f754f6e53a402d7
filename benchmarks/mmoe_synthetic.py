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


def load_config_module():
  spec = importlib.util.spec_from_file_location(
      "configs.mmoe_synthetic", ROOT / "configs" / "mmoe_synthetic.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def parse_args(argv=None) -> argparse.Namespace:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--models", default=",".join(DEFAULT_MODELS),
                  help="comma-separated architectures of configs/mmoe_synthetic.py")
  ap.add_argument("--ps", default="1.0,0.9,0.5,0.0", help="task correlations")
  ap.add_argument("--seeds", type=int, default=3, help="number of seeds")
  ap.add_argument("--first-seed", type=int, default=0,
                  help="run seeds first-seed .. first-seed + seeds - 1")
  ap.add_argument("--merge", action="append", default=[], metavar="JSON",
                  help="also report the runs of an earlier report (same steps, lr, "
                  "batch size and data sizes); repeatable")
  ap.add_argument("--steps", type=int, default=8000)
  ap.add_argument("--batch-size", type=int, default=128)
  ap.add_argument("--lr", type=float, default=1e-2)
  ap.add_argument("--num-train", type=int, default=100000)
  ap.add_argument("--num-test", type=int, default=2000)
  ap.add_argument("--data-dir", default=None,
                  help="dataset cache (default: $MTL_JAX_DATA_DIR or ~/.cache)")
  ap.add_argument("--out", default=str(DEFAULT_OUT), help="output path prefix")
  ap.add_argument("--render", default=None, metavar="JSON",
                  help="only re-write the table and plot of a previous run's JSON")
  ap.add_argument("--quick", action="store_true",
                  help="smoke run: p in {1, 0}, 1 seed, 2000 steps (too short to "
                  "show the paper's effect, which needs ~8000 steps)")
  args = ap.parse_args(argv)
  if args.quick:
    args.ps, args.seeds, args.steps = "1.0,0.0", 1, 2000
  return args


def make_config(module, arch: str, p: float, seed: int, args):
  c = module.get_config(f"{arch},p={p},seed={seed}")
  c.data.update(dict(num_train=args.num_train, num_test=args.num_test))
  if args.data_dir:
    c.data.data_dir = args.data_dir
  c.optimizer.learning_rate = args.lr
  c.train.update(dict(num_steps=args.steps, batch_size=args.batch_size,
                      log_every=max(args.steps, 1), checkpoint_every=0))
  return c


def count_params(config) -> int:
  from mtl_jax import data, models, tasks as tasks_lib
  tasks = tasks_lib.from_config(config.tasks)
  shape = data.input_shape(config.data)
  model = jax.eval_shape(lambda: models.params_of(models.partition(
      models.build(config.model, tasks, shape))))
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


COMPARED = ("steps", "lr", "batch_size", "num_train", "num_test")


def merge(runs: list, args, paths: list) -> tuple[list, list]:
  """``runs`` plus the runs of the reports at ``paths`` that ``runs`` lacks.

  Raises:
    ValueError: if a report was trained differently (see ``COMPARED``).
  """
  merged, sources = list(runs), []
  for path in paths:
    with open(path) as f:
      old = json.load(f)
    diff = {k: (old["args"][k], getattr(args, k)) for k in COMPARED
            if old["args"][k] != getattr(args, k)}
    if diff:
      raise ValueError(f"{path} was run with other settings (old, new): {diff}.")
    have = {(r["model"], r["p"], r["seed"]) for r in merged}
    added = [r for r in old["runs"] if (r["model"], r["p"], r["seed"]) not in have]
    merged += added
    sources.append({"path": os.path.relpath(os.path.abspath(path), ROOT),
                    "command": old["command"], "runs": len(added)})
    sources += old.get("merged", [])
  return merged, sources


NOTES = """\
Notes (8 seeds per cell). Seeds 0-2 are the first report's runs (two of them
re-ran bit-identical before the seeds 3-7 of hard_sharing and mmoe were run,
on the same code). A concurrent change to the input pipeline then changed
the batch order drawn from each seed (same data) before the seeds 3-7 of
soft_sharing and independent ran, so today's code gives other per-seed
values (e.g. p = 1,
seed 0: MMoE 0.436 instead of 0.626, independent 0.518 instead of 0.550):
each cell is a sample of runs, read its median and spread, not one seed's
value. Re-running with `--seeds 8` on one code version would make the table
reproducible run by run.

* Time per run: one (p, model, seed) run of 8000 steps took 24-32 s pinned to
  one core (`taskset -c 1`) on a 2-core machine shared with other jobs; the
  runs of this report took 10-63 s (median 27 s) as the load varied, about
  1 CPU-hour for the 128 runs.
* The paper's finding does not show robustly. From p = 1 to p = 0 the shared
  bottom's test MSE rises by +0.054 (median; mean +0.016) and MMoE's by +0.057
  (mean +0.041): the same. A bootstrap over seeds of the difference between
  the two (median) degradations is centred at 0.00, 90% interval [-0.09,
  +0.09]. Independent networks, which nothing couples to p (y1 is the same
  function at every p), move by +0.026, so the p effect of either model is at
  most a few hundredths above that noise floor.
* What does show robustly: MMoE beats the shared bottom at every p (medians
  0.34-0.42 vs 0.47-0.56), by about the same margin at every p.
* The first report's shared-bottom degradation (+0.150 on 3 seeds) was one
  run (seed 1 at p = 0: y2 MSE 1.23). Such failed runs (one task left poorly
  fit) happen for every model and every p: shared bottom seed 3 at p = 1
  (1.146), independent seed 6 at p = 0 (0.882), soft sharing seed 6 at p = 0
  (0.966), MMoE seed 0 at p = 1 (0.626). They are not a shared-bottom failure
  on unrelated tasks, and the medians are the numbers to read.
* Fewer steps do not reveal it either: at 2000 steps (8 seeds, p in {1, 0};
  `--steps 2000 --ps 1.0,0.0 --models hard_sharing,mmoe --seeds 8`) the medians
  rise by +0.115 (shared bottom, 1.159 -> 1.274) and +0.087 (MMoE, 1.107 ->
  1.194).
* Why, as far as we can tell: the sizes are the paper's (8 experts x 16 units,
  a 113-unit shared bottom, 8-unit towers, d = 100), but the measurement is
  not: the paper averages training-loss curves over many independent runs,
  each with new data and initialisation; here the test MSE after a fixed
  budget on one dataset per p. And in this task each target depends on x
  only through one projection w_i^T x, so at p = 0 a 113-unit layer can split
  its units between the two directions at little cost; the remaining error
  (~0.4-0.5 against a target variance of ~7) is dominated by the
  high-frequency sines (alpha_j up to 10), which all models fit about equally
  badly. The sharing cost that is left is small against the seed noise: the
  shared bottom's y1 error (the same target at every p) goes from 0.48 at
  p = 1 to 0.51-0.52 at p < 1 (medians), MMoE's stays at 0.34-0.40. Averaging
  over datasets (a data seed per run) and many more seeds would be the next
  step; not done here (compute budget).

Earlier exploration (same models and step, in-memory batches, 4 seeds, p in
{1, 0}); its "paper's ordering" at lr 1e-2 is not confirmed by the 8 seeds
above:

* Data size: with 10k training examples every model overfits the
  high-frequency sines (train MSE 0.7, test MSE 7 = the target variance after
  4k steps); 100k examples are needed for the test MSE to fall.
* Learning rate and steps: at lr 1e-3 (16k steps) MMoE degrades *more* than
  the shared bottom as p falls (MMoE 0.28 -> 0.45, shared bottom 0.51 ->
  0.57); at lr 1e-2 the shared bottom degraded more (0.54 -> 0.76 vs MMoE
  0.38 -> 0.42 at 8k steps, 0.42 -> 0.58 vs 0.30 -> 0.35 at 16k steps).
* Expert count (lr 1e-2, 8k steps): MMoE stays flat in p with 4 x 32
  (0.48 -> 0.49) and 16 x 8 units (0.45 -> 0.45); 8 x 16 is the best.
"""


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
           f"{args['steps']} Adam steps (lr {args['lr']}), batch {args['batch_size']}, "
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
  lines += ["", NOTES]
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


def write(report: dict, out: str) -> str:
  """Writes ``out``.json, .md and .png; returns the markdown."""
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  with open(out + ".json", "w") as f:
    json.dump(report, f, indent=1)
  table = markdown(report)
  with open(out + ".md", "w") as f:
    f.write(table)
  plot(report["summary"], _ordered(report)[1], out + ".png")
  return table


def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.render:
    with open(args.render) as f:
      report = json.load(f)
    models_, ps = _ordered(report)
    report["summary"] = summarise(report["runs"], models_, ps)
    print(write(report, args.render[:-len(".json")]))
    return report
  from mtl_jax import models
  module = load_config_module()
  requested = [m.strip() for m in args.models.split(",") if m.strip()]
  missing = [m for m in requested if module._model(m)["arch"] not in models.REGISTRY]
  models_ = [m for m in requested if m not in missing]
  ps = [float(p) for p in args.ps.split(",")]
  params = {m: count_params(make_config(module, m, ps[0], 0, args)) for m in models_}
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
