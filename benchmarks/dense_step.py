"""Step time and memory of the dense benchmarks' networks at their published sizes.

What a full NYUv2 / Cityscapes run costs, before a user starts one: for each
benchmark config of ``configs/bench/`` (the published architecture, image
size and batch size), the library's train step is compiled and timed on a
synthetic batch of the right shapes (no dataset needed). Reported per case:
compile time, the median step time and its CPU time, XLA's memory estimate of
the compiled step (arguments + outputs + temporaries, from
``memory_analysis``), the growth of the process's peak RSS while compiling and
stepping, the parameter count, and the projected time of the published
schedule (steps of the protocol x the median step time).

Usage::

  python -m benchmarks.dense_step                 # all cases, 3 timed steps
  python -m benchmarks.dense_step --cases nyuv2_segnet_mtan --steps 5
  python -m benchmarks.dense_step --engine jacobian --method upgrad

Results: ``benchmarks/results/dense_step[_<tag>].{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import time

import jax
import numpy as np

from benchmarks import throughput
from mtl_jax import config_files, models
from mtl_jax.train import loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = ("nyuv2_segnet_mtan", "nyuv2_deeplab", "cityscapes_segnet_mtan",
         "cityscapes_deeplab")


def synthetic_batch(tasks, input_shape, batch_size: int, seed: int = 0) -> dict:
  """A batch of the tasks' shapes: random images, labels, depths and normals."""
  rng = np.random.default_rng(seed)
  h, w = input_shape[:2]
  targets = {}
  for t in tasks:
    if t.kind == "segmentation":
      targets[t.name] = rng.integers(-1, t.num_classes, (batch_size, h, w), dtype=np.int32)
    elif t.kind == "depth":
      targets[t.name] = rng.uniform(0.5, 10.0, (batch_size, h, w)).astype(np.float32)
    elif t.kind == "normals":
      n = rng.normal(size=(batch_size, h, w, 3))
      targets[t.name] = (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32)
    elif t.kind == "multiclass":
      targets[t.name] = rng.integers(0, t.num_classes, (batch_size,), dtype=np.int32)
    else:
      shape = (batch_size,) if t.out_features == 1 else (batch_size, t.out_features)
      targets[t.name] = rng.uniform(0, 1, shape).astype(np.float32)
  return {"inputs": rng.uniform(0, 1, (batch_size, *input_shape)).astype(np.float32),
          "targets": targets,
          "mask": {t.name: np.ones(batch_size, bool) for t in tasks}}


def _config(case: str, method: str | None, engine: str | None):
  c = config_files.load(os.path.join(ROOT, "configs", "bench", f"{case}.py"))
  c.unlock()
  if method:
    from mtl_jax.train.compare import method_overrides
    c.method.update(method_overrides(method))
  if engine:
    c.method.engine = engine
  return c


def _maxrss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(case: str, *, steps: int, method: str | None = None,
            engine: str | None = None) -> dict:
  """Compiles and times the train step of ``configs/bench/<case>.py``."""
  rss0 = _maxrss_mb()
  s = loop.setup(_config(case, method, engine))
  train = s.settings.train
  compiled = loop.compile_run(s)
  state = compiled.init()
  batch = compiled.put(synthetic_batch(s.tasks, s.input_shape, train.batch_size),
                       train.batch_size)
  t0 = time.perf_counter()
  step = compiled.step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  peak_mb, temp_mb = throughput._memory_mb(step)  # pylint: disable=protected-access
  times, cpu, _ = throughput.time_steps(step, state, batch, steps=steps,
                                        min_time=0.0, warmup=1)
  median = statistics.median(times)
  params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(models.params_of(s.partition)))
  return dict(case=case, arch=s.settings.model.arch,
              trunk=dict(s.settings.model.options.get("trunk", {})).get("kind"),
              method=s.settings.method.label, engine=s.method.engine,
              input_shape=list(s.input_shape), batch_size=train.batch_size,
              params_m=params / 1e6, compile_s=compile_s, median_s=median,
              cpu_s=statistics.median(cpu), timed_steps=len(times),
              xla_peak_mb=peak_mb, xla_temp_mb=temp_mb,
              rss_growth_mb=_maxrss_mb() - rss0, protocol_steps=train.num_steps,
              protocol_hours=train.num_steps * median / 3600)


def _commit() -> str:
  try:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def markdown(rows: list[dict], env: dict) -> str:
  lines = [
      "# Dense benchmarks: step time and memory at the published sizes", "",
      f"{env['time']}, commit {env['commit']}, JAX {env['jax']} on "
      f"{env['backend']} ({env['cpus']} CPUs visible), load average "
      f"{env['load_average']} at the start. Synthetic batches of the "
      "benchmark's shapes; compile excluded from the step times. XLA peak = "
      "arguments + outputs + temporaries of the compiled step (XLA's "
      "estimate); RSS growth = the process's peak RSS increase over "
      "building, compiling and stepping. Protocol = the config's training "
      "steps x the median step time.", "",
      "| case | arch / trunk | method (engine) | input x batch | params (M) "
      "| compile (s) | step (s) | CPU (s) | XLA peak (MB) | RSS growth (MB) "
      "| protocol (h) |",
      "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    shape = "x".join(str(d) for d in r["input_shape"])
    lines.append(
        f"| {r['case']} | {r['arch']} / {r['trunk']} | {r['method']} ({r['engine']}) "
        f"| {shape} x {r['batch_size']} | {r['params_m']:.2f} | {r['compile_s']:.1f} "
        f"| {r['median_s']:.2f} | {r['cpu_s']:.2f} | {r['xla_peak_mb']:.0f} "
        f"| {r['rss_growth_mb']:.0f} | {r['protocol_hours']:.0f} |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--cases", default=",".join(CASES))
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--method", default=None, help="a weighting or aggregation name")
  p.add_argument("--engine", default=None)
  p.add_argument("--tag", default="")
  p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
  args = p.parse_args(argv)
  env = dict(throughput.environment(), commit=_commit())
  rows = []
  for case in args.cases.split(","):
    rows.append(measure(case, steps=args.steps, method=args.method, engine=args.engine))
    print(json.dumps(rows[-1]), flush=True)
  name = "dense_step" + (f"_{args.tag}" if args.tag else "")
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, name + ".json"), "w") as f:
    json.dump(dict(env=env, rows=rows), f, indent=2)
  text = markdown(rows, env)
  with open(os.path.join(args.out, name + ".md"), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  main()
