"""Running the MMoE synthetic benchmark: configs, runs, the command line.

A run trains one model of ``configs/mmoe_synthetic.py`` at one task
correlation p and seed, through :func:`mtl_jax.train.loop.train`, or many
seeds at once with the train step vmapped over them
(:class:`benchmarks.many_seeds.ManySeeds`, ``--protocol paper``).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib.util
import json
import math
import os
import shutil
import subprocess
import tempfile
import time

import jax
import numpy as np
from tqdm.auto import tqdm

from benchmarks.many_seeds import ManySeeds
from benchmarks.mmoe_synthetic import report, stats
from mtl_jax import data, models, settings
from mtl_jax.data import base, mmoe_synthetic
from mtl_jax.train import loop

ROOT = report.ROOT
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "mmoe_synthetic"
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


def _parser() -> argparse.ArgumentParser:
  ap = argparse.ArgumentParser(
      prog="python -m benchmarks.mmoe_synthetic",
      description="MMoE synthetic benchmark: test MSE vs task correlation p "
      "(Ma et al., KDD 2018).")
  ap.add_argument("--protocol", choices=("fixed", "paper"), default="fixed",
                  help="fixed: one dataset per p, final test MSE (default); paper: "
                  "new data and initialisation per seed, training-loss curves")
  ap.add_argument("--models", default=None,
                  help="comma-separated architectures of configs/mmoe_synthetic.py "
                  f"(default: {','.join(report.DEFAULT_MODELS)}; paper: "
                  f"{','.join(PAPER_MODELS)})")
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
  return ap


def parse_args(argv=None) -> argparse.Namespace:
  ap = _parser()
  args = ap.parse_args(argv)
  paper = args.protocol == "paper"
  if args.models is None:
    args.models = ",".join(PAPER_MODELS if paper else report.DEFAULT_MODELS)
  if args.seeds is None:
    args.seeds = PAPER_SEEDS if paper else 3
  if args.steps is None:
    args.steps = PAPER_STEPS if paper else 8000
  if args.out is None:
    args.out = str(PAPER_OUT if paper else DEFAULT_OUT)
  if args.quick:
    args.ps = "1.0,0.0"
    args.seeds, args.steps = (2, 1000) if paper else (1, 2000)
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
  s = settings.parse(config)
  params = jax.eval_shape(lambda: models.params_of(models.partition(
      s.model.build(s.tasks, s.input_shape, seed=s.seed))))
  return int(sum(math.prod(x.shape) for x in jax.tree.leaves(params)))


def _git_commit() -> str | None:
  try:
    return subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                          capture_output=True, text=True, timeout=30,
                          check=True).stdout.strip() or None
  except (OSError, subprocess.SubprocessError):
    return None


def environment() -> dict:
  """When, at which commit and on what machine load the runs start (the load
  at the end is added by :func:`_finish`)."""
  return {"time": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
          "commit": _git_commit(), "jax": jax.__version__,
          "backend": jax.default_backend(), "cpus": os.cpu_count(),
          "load_average": [round(x, 2) for x in os.getloadavg()]}


def _finish(env: dict) -> dict:
  return dict(env, load_average_end=[round(x, 2) for x in os.getloadavg()])


# ---------------------------------------------------------------------------
# Runs through the training loop.


def _through_loop(config, eval_splits: tuple, read_workdir=None):
  """``(result, seconds, read_workdir(workdir))`` of one run of the loop in a
  temporary directory."""
  workdir = tempfile.mkdtemp(prefix="mmoe_synthetic_")
  try:
    t0 = time.perf_counter()
    result = loop.train(config, workdir=workdir, progress=False, eval_splits=eval_splits)
    seconds = time.perf_counter() - t0
    extra = read_workdir(workdir) if read_workdir else None
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  return result, seconds, extra


def run_one(config) -> dict:
  """One fixed-protocol run: the final test MSE per task."""
  result, seconds, _ = _through_loop(config, ("test",))
  losses = result.eval_losses["test"]
  return {"test_mse": {k: float(v) for k, v in losses.items()},
          "mean_test_mse": float(np.mean(list(losses.values()))),
          "seconds": round(seconds, 2), "steps_per_second": result.steps_per_second}


def read_train_records(path: str) -> list:
  """The ``train`` records of a run's ``metrics.jsonl``."""
  with open(path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  return [r for r in records if r.get("split") == "train"]


def run_paper_one(config, curve_every: int) -> dict:
  """One paper-protocol run through the loop: training curve, final train
  and test MSE."""
  result, seconds, records = _through_loop(
      config, ("train", "test"),
      lambda workdir: read_train_records(os.path.join(workdir, "metrics.jsonl")))
  train = result.eval_losses["train"]
  return stats.run_record(records, sorted(train), train, result.eval_losses["test"],
                          curve_every=curve_every, seconds=seconds,
                          steps_per_second=result.steps_per_second)


# ---------------------------------------------------------------------------
# Seeds trained at once (the paper's protocol).


def data_options(config) -> dict:
  """The dataset options of a run's config (for ``mmoe_synthetic.generate``):
  the builder's, as the data pipeline resolves them."""
  return base.resolve_options(data.get_spec(config.data.name), config.data)


def _seed_data(config, seeds: list, ps: list) -> dict:
  """``{split: [per seed: [per p: arrays]]}``: each seed's data drawn once for
  all p (the inputs, noise and ``u1, u2`` a run of that seed reads at any p)."""
  options = data_options(config)
  return {split: [mmoe_synthetic.generate_correlations(dict(options, seed=seed), split,
                                                       ps) for seed in seeds]
          for split in ("train", "test")}


def _train_seeds(trainer, seeds: list, train, test, args) -> tuple:
  """``(records, final train MSE [S, T], seconds)`` of ``seeds`` trained at once."""
  t0 = time.perf_counter()
  batch = trainer.train(seeds, train)
  final, test_mse = trainer.evaluate(batch, train), trainer.evaluate(batch, test)
  seconds = time.perf_counter() - t0
  records = [stats.record_from_losses(
      batch.losses[:, j], trainer.task_names, final[j], test_mse[j],
      curve_every=args.curve_every, sample_every=args.sample_every,
      seconds=seconds / len(seeds), steps_per_second=len(seeds) * args.steps / seconds)
      for j in range(len(seeds))]
  return records, final, seconds


def run_paper_seeds(trainers: dict, configs: dict, seeds: list, ps: list, args) -> list:
  """Paper-protocol runs of ``seeds`` at every p and model, the seeds trained
  at once (:class:`benchmarks.many_seeds.ManySeeds` per model in ``trainers``)."""
  split_data = _seed_data(next(iter(configs.values())), seeds, ps)
  runs, put = [], next(iter(trainers.values())).put  # the models share the tasks
  for i, p in enumerate(ps):
    train = put([per_p[i] for per_p in split_data["train"]])
    test = put([per_p[i] for per_p in split_data["test"]])
    for arch, trainer in trainers.items():
      records, final, seconds = _train_seeds(trainer, seeds, train, test, args)
      runs += [dict(model=arch, p=p, seed=seed, data_seed=seed, **out)
               for seed, out in zip(seeds, records)]
      tqdm.write(f"p={p} {arch:13s} seeds {seeds[0]}..{seeds[-1]}: final train MSE "
                 f"median {np.median(np.mean(final, axis=1)):.4f} ({seconds:.1f}s)")
  return runs


# ---------------------------------------------------------------------------
# The command line.


def _plan(args):
  """``(config module, models to run, models missing from the registry, ps,
  parameters per model)`` from the command line."""
  module = load_config_module()
  requested = [m.strip() for m in args.models.split(",") if m.strip()]
  missing = [m for m in requested if module._model(m)["arch"] not in models.REGISTRY]
  models_ = [m for m in requested if m not in missing]
  ps = [float(p) for p in args.ps.split(",")]
  params = {m: count_params(make_config(module, m, ps[0], 0, args)) for m in models_}
  return module, models_, missing, ps, params


def _fixed_runs(module, models_, ps, seeds, args) -> list:
  """Every fixed-protocol run through the training loop."""
  runs = []
  grid = [(p, arch, seed) for p in ps for arch in models_ for seed in seeds]
  for p, arch, seed in tqdm(grid, desc="mmoe_synthetic", unit="run", disable=None):
    out = run_one(make_config(module, arch, p, seed, args))
    runs.append(dict(model=arch, p=p, seed=seed, **out))
    tqdm.write(f"p={p} {arch:13s} seed={seed} test MSE {out['mean_test_mse']:.4f} "
               f"({out['seconds']:.1f}s)")
  return runs


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
  configs = {arch: make_config(module, arch, ps[0], seeds[0], args) for arch in models_}
  trainers = {arch: ManySeeds(c) for arch, c in configs.items()}
  runs, seeds = [], list(seeds)
  for start in tqdm(range(0, len(seeds), args.at_once), desc="mmoe_synthetic paper",
                    unit="batch", disable=None):
    batch = seeds[start:start + args.at_once]
    runs += run_paper_seeds(trainers, configs, batch, ps, args)
  return runs


def _collect(args, argv, collect, build, write) -> dict:
  """Runs ``collect``, merges the reports of ``--merge``, then builds the
  report with ``build`` and writes it with ``write``."""
  env = environment()
  module, models_, missing, ps, params = _plan(args)
  seeds = range(args.first_seed, args.first_seed + args.seeds)
  t0 = time.perf_counter()
  runs = collect(module, models_, ps, seeds, args)
  print(f"{len(runs)} runs in {(time.perf_counter() - t0) / 60:.1f} min")
  runs, sources = report.merge(runs, args, args.merge)
  for m in {r["model"] for r in runs}:
    params.setdefault(m, count_params(make_config(module, m, ps[0], 0, args)))
  result = build(runs, args, params, missing, sources, argv, environment=_finish(env))
  print(write(result, args.out))
  return result


def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.render:
    return report.render(args.render)
  if args.protocol == "fixed":
    return _collect(args, argv, _fixed_runs, report.fixed_report, report.write)
  collect = _paper_runs_at_once if args.at_once > 0 else _paper_runs_one_at_a_time
  previous = report.merged_summaries(args.merge)
  return _collect(args, argv, collect,
                  functools.partial(report.paper_report, previous=previous),
                  report.write_paper)
