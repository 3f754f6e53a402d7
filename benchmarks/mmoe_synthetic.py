"""MMoE synthetic benchmark: test MSE vs task correlation p (Ma et al., KDD 2018).

Trains shared-bottom (``hard_sharing``), MMoE, soft sharing and independent
networks of about the same size (see ``configs/mmoe_synthetic.py``) on the
two-task synthetic regression data of ``mtl_jax.data.mmoe_synthetic`` for each
correlation p and seed, with Adam on the summed MSE, and reports the test MSE
averaged over the two tasks, then over seeds (mean +- std).

The paper's finding: as p falls, the shared-bottom model degrades much more
than MMoE. The summary prints each model's degradation ``MSE(p_min) -
MSE(p_max)``.

Usage::

  python benchmarks/mmoe_synthetic.py            # 3 seeds x 4 p x 4 models, 8000 steps
  python benchmarks/mmoe_synthetic.py --quick    # smoke run, a few minutes on 2 cores
  python benchmarks/mmoe_synthetic.py --models hard_sharing,mmoe --ps 1,0 --seeds 5

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
  ap.add_argument("--seeds", type=int, default=3)
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
  summary = {}
  for arch in models_:
    summary[arch] = {}
    for p in ps:
      values = [r["mean_test_mse"] for r in runs if r["model"] == arch and r["p"] == p]
      if values:
        summary[arch][str(p)] = {"mean": float(np.mean(values)),
                                 "std": float(np.std(values)), "n": len(values)}
  return summary


def degradation(summary: dict, arch: str, ps: list) -> float:
  hi, lo = str(max(ps)), str(min(ps))
  return summary[arch][lo]["mean"] - summary[arch][hi]["mean"]


NOTES = """\
Notes: what it takes for the paper's effect to show. Besides the table's runs,
an exploration with the same models and train step (in-memory batches, 4
seeds, p in {1, 0}) varied data size, learning rate, steps and expert count:

* Data size: with 10k training examples every model overfits the
  high-frequency sines (train MSE 0.7, test MSE 7 = the target variance after
  4k steps); 100k examples are needed for the test MSE to fall.
* Learning rate and steps: at lr 1e-3 (16k steps) MMoE is still splitting its
  experts and degrades *more* than the shared bottom as p falls
  (MMoE 0.28 -> 0.45, shared bottom 0.51 -> 0.57); at lr 1e-2 the paper's
  ordering appears from ~6k steps on: shared bottom 0.54 -> 0.76 vs MMoE
  0.38 -> 0.42 at 8k steps, 0.42 -> 0.58 vs 0.30 -> 0.35 at 16k steps.
* Expert count (lr 1e-2, 8k steps): MMoE stays flat in p with 4 x 32
  (0.48 -> 0.49) and 16 x 8 units (0.45 -> 0.45); 8 x 16 is the best.
* Seeds: runs differ by up to +-0.15. In the table, the shared bottom's rise at
  p = 0 comes mostly from one run that left task y2 poorly fit (seed 1:
  y2 MSE 1.23), the failure mode the paper reports for shared bottoms on
  unrelated tasks; MMoE's large std at p = 1 is one run (seed 0, 0.63).
"""


def markdown(report: dict) -> str:
  args, summary, params = report["args"], report["summary"], report["params"]
  ps = sorted({float(p) for row in summary.values() for p in row}, reverse=True)
  lines = [f"# MMoE synthetic: test MSE (mean over the 2 tasks; mean +- std over "
           f"{args['seeds']} seeds)", "",
           f"{args['steps']} Adam steps (lr {args['lr']}), batch {args['batch_size']}, "
           f"{args['num_train']} train / {args['num_test']} test examples, d = 100.", "",
           "| model | params | " + " | ".join(f"p = {p}" for p in ps)
           + f" | MSE(p={min(ps)}) - MSE(p={max(ps)}) |",
           "|---|---:|" + "---:|" * len(ps) + "---:|"]
  for arch, row in summary.items():
    cells = [f"{row[str(p)]['mean']:.3f} +- {row[str(p)]['std']:.3f}" for p in ps]
    lines.append(f"| {arch} | {params[arch]} | " + " | ".join(cells)
                 + f" | {degradation(summary, arch, ps):+.3f} |")
  if report["missing"]:
    lines += ["", f"Not run (not in the model registry): {', '.join(report['missing'])}."]
  lines += ["", f"Command: `{report['command']}`", "", NOTES]
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
    ax.errorbar(xs, mean, yerr=std, marker="o", capsize=3, label=arch)
  ax.set_xlabel("task correlation p")
  ax.set_ylabel("test MSE (mean over tasks)")
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
  plot(report["summary"], [float(p) for p in report["args"]["ps"].split(",")],
       out + ".png")
  return table


def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.render:
    with open(args.render) as f:
      report = json.load(f)
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
  grid = [(p, arch, seed) for p in ps for arch in models_ for seed in range(args.seeds)]
  for p, arch, seed in tqdm(grid, desc="mmoe_synthetic", unit="run", disable=None):
    out = run_one(make_config(module, arch, p, seed, args))
    runs.append(dict(model=arch, p=p, seed=seed, **out))
    tqdm.write(f"p={p} {arch:13s} seed={seed} test MSE {out['mean_test_mse']:.4f} "
               f"({out['seconds']:.1f}s)")
  summary = summarise(runs, models_, ps)
  command = " ".join(["python benchmarks/mmoe_synthetic.py",
                      *(argv if argv is not None else sys.argv[1:])])
  report = {"command": command.strip(), "args": vars(args), "params": params,
            "missing": missing, "summary": summary, "runs": runs,
            "degradation": {m: degradation(summary, m, ps) for m in models_}}
  print(write(report, args.out))
  return report


if __name__ == "__main__":
  main()
