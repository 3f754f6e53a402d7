"""Is the train step ever starved? Input pipeline vs. train step, examples/s.

Run from the repository root::

  python -m benchmarks.input_pipeline                  # every embedded dataset
  python -m benchmarks.input_pipeline --datasets sprites --batches 50 --tag quick

For each embedded dataset with its config (``configs/<config>.py``, the
config's batch size, model and method), it measures:

* ``pipeline``: examples/s of the training iterator alone (the arguments
  ``loop.train`` uses: shuffled, repeating, ``drop_remainder``, the config's
  ``num_threads`` / ``prefetch``), iterating ``--batches`` batches after one
  warm-up batch, once with the split held in memory (the embedded datasets'
  default) and once reading and decoding array_record records batch by batch
  (``in_memory=False``, how the large catalog datasets are read);
* ``step``: examples/s of the compiled train step alone
  (``loop.setup`` + ``loop.compile_run``, state donated) on ``--cached``
  batches already on the device, cycled for ``--steps`` steps (repeated until
  ``--min-time`` seconds have passed) after one compiling step, timed to
  ``block_until_ready`` of the last state;
* ``cpu ms/batch``: process CPU time (all threads) per batch, steadier than
  wall time on a loaded machine.

Each figure is the median over ``--repeats`` passes. ``headroom`` =
pipeline / step: above 1 the iterator makes batches faster than the step
consumes them, so the step is never starved. (During training both run at
once and share the cores; the CPU columns say what each costs.) The machine
load (``os.getloadavg``) is recorded next to the numbers. Outputs
``benchmarks/results/input_pipeline[_TAG].{json,md}``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import tempfile
import time

import jax

from mtl_jax import data
from mtl_jax.train import loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
# Embedded dataset -> its config (configs/<name>.py) and config argument.
CONFIGS = {"sprites": ("sprites", None), "mmoe_synthetic": ("mmoe_synthetic", None),
           "multi_digits": ("multi_digits", None)}


def load_config(name: str, arg=None):
  """``configs/<name>.py:get_config(arg)``, loaded by path as the CLI does."""
  path = os.path.join(ROOT, "configs", f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"configs_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config() if arg is None else module.get_config(arg)


def _cpu_s() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _train_iterator(config, **data_overrides):
  """The iterator ``loop.train`` builds (one process)."""
  section = dict(config.data.to_dict(), tasks=sorted(config.tasks), **data_overrides)
  return data.build(section, "train", batch_size=int(config.train.batch_size),
                    seed=int(config.seed), shuffle=True, drop_remainder=True,
                    num_epochs=None)


def time_pipeline(config, batches: int, **data_overrides) -> dict:
  """Examples/s and CPU ms per batch of the training iterator alone."""
  with _train_iterator(config, **data_overrides) as iterator:
    next(iterator)  # threads started, split read into memory
    start, cpu = time.perf_counter(), _cpu_s()
    for _ in range(batches):
      next(iterator)
    wall, cpu = time.perf_counter() - start, _cpu_s() - cpu
  size = int(config.train.batch_size)
  return {"examples_per_s": batches * size / wall, "cpu_ms_per_batch": 1e3 * cpu / batches}


def time_step(config, steps: int, cached: int, repeats: int,
              min_time: float) -> list[dict]:
  """Examples/s and CPU ms per batch of the compiled step on cached batches."""
  s = loop.setup(config)
  compiled = loop.compile_run(s)
  state = compiled.init()
  size = int(config.train.batch_size)
  with _train_iterator(config) as iterator:
    batches = [compiled.put(next(iterator), size) for _ in range(cached)]
  state, _ = compiled.step(state, batches[0])  # compiles
  jax.block_until_ready(state)
  passes = []
  for _ in range(repeats):
    start, cpu, done = time.perf_counter(), _cpu_s(), 0
    while not done or time.perf_counter() - start < min_time:
      for i in range(steps):
        state, _ = compiled.step(state, batches[i % cached])
      jax.block_until_ready(state)
      done += steps
    wall, cpu = time.perf_counter() - start, _cpu_s() - cpu
    passes.append({"examples_per_s": done * size / wall,
                   "cpu_ms_per_batch": 1e3 * cpu / done})
  return passes


def _median(passes: list[dict]) -> dict:
  return {k: statistics.median(p[k] for p in passes) for k in passes[0]}


def measure(dataset: str, args, data_dir: str) -> dict:
  """One row: the dataset's pipeline (in memory, from records) and step."""
  name, arg = CONFIGS[dataset]
  config = load_config(name, arg)
  config.data.data_dir = data_dir
  data.num_examples(config.data, "train")  # generate the data outside the timing
  in_memory = [time_pipeline(config, args.batches, in_memory=True)
               for _ in range(args.repeats)]
  records = [time_pipeline(config, args.batches, in_memory=False)
             for _ in range(args.repeats)]
  step = time_step(config, args.steps, args.cached, args.repeats, args.min_time)
  row = {"dataset": dataset, "config": f"configs/{name}.py" + (f":{arg}" if arg else ""),
         "batch_size": int(config.train.batch_size),
         "input_shape": list(data.input_shape(config.data)),
         "model": config.model.arch, "tasks": len(config.tasks),
         "pipeline_in_memory": _median(in_memory), "pipeline_records": _median(records),
         "step": _median(step)}
  row["headroom"] = row["pipeline_in_memory"]["examples_per_s"] / row["step"]["examples_per_s"]
  row["headroom_records"] = (row["pipeline_records"]["examples_per_s"]
                             / row["step"]["examples_per_s"])
  return row


def machine() -> dict:
  load = os.getloadavg()
  return {"cpus": os.cpu_count(), "load_avg_1_5_15": [round(x, 2) for x in load],
          "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
          "python": platform.python_version()}


def format_table(rows: list[dict], info: dict) -> str:
  lines = [
      f"Machine: {info['cpus']} CPUs, load average (1/5/15 min) "
      f"{info['load_avg_1_5_15'][0]:.1f} / {info['load_avg_1_5_15'][1]:.1f} / "
      f"{info['load_avg_1_5_15'][2]:.1f} at the start and "
      f"{info['load_avg_end'][0]:.1f} at the end; devices {info['devices']}.",
      "",
      "| dataset | config | batch | pipeline ex/s (in memory) | pipeline ex/s "
      "(records) | step ex/s | headroom (in memory / records) | step starved "
      "(in memory) | cpu ms/batch: pipeline in memory / records / step |",
      "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['dataset']} | {r['config']} | {r['batch_size']} | "
        f"{r['pipeline_in_memory']['examples_per_s']:,.0f} | "
        f"{r['pipeline_records']['examples_per_s']:,.0f} | "
        f"{r['step']['examples_per_s']:,.0f} | {r['headroom']:.2f}x / "
        f"{r['headroom_records']:.2f}x | {'yes' if r['headroom'] < 1 else 'no'} | "
        f"{r['pipeline_in_memory']['cpu_ms_per_batch']:.1f} / "
        f"{r['pipeline_records']['cpu_ms_per_batch']:.1f} / "
        f"{r['step']['cpu_ms_per_batch']:.1f} |")
  lines += ["", "Headroom = pipeline / step examples/s; below 1 the step waits for "
            "batches. Pipeline and step were timed apart; in training they share "
            "the CPUs."]
  return "\n".join(lines)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--datasets", default=",".join(CONFIGS),
                      help="comma-separated embedded datasets")
  parser.add_argument("--batches", type=int, default=100, help="timed pipeline batches")
  parser.add_argument("--steps", type=int, default=50, help="timed train steps")
  parser.add_argument("--min-time", type=float, default=1.0,
                      help="least seconds of one pass of timed steps")
  parser.add_argument("--cached", type=int, default=8, help="distinct cached batches")
  parser.add_argument("--repeats", type=int, default=3, help="passes (median)")
  parser.add_argument("--data-dir", default=None,
                      help="data directory (default: a fresh temporary one)")
  parser.add_argument("--tag", default="", help="suffix of the result files")
  args = parser.parse_args(argv)
  info = machine()
  with tempfile.TemporaryDirectory() as scratch:
    data_dir = args.data_dir or scratch
    rows = []
    for dataset in args.datasets.split(","):
      rows.append(measure(dataset, args, data_dir))
      print(f"{dataset}: done", flush=True)
  info["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
  table = format_table(rows, info)
  print(table)
  summary = {"machine": info, "settings": vars(args), "rows": rows, "table": table}
  os.makedirs(RESULTS, exist_ok=True)
  stem = os.path.join(RESULTS, "input_pipeline" + (f"_{args.tag}" if args.tag else ""))
  with open(stem + ".json", "w") as f:
    json.dump(summary, f, indent=2)
  with open(stem + ".md", "w") as f:
    f.write(f"# Input pipeline vs. train step\n\n{__doc__.split(chr(10))[0]}\n\n"
            f"{table}\n")
  return summary


if __name__ == "__main__":
  main()
