"""Train-step throughput of every method x engine x K on the peer workloads.

Run from the repository root::

  python -m benchmarks.throughput                      # the full sweep
  python -m benchmarks.throughput --methods equal,upgrad,mgda --ks 2,8 \\
      --steps 10 --tag quick                           # a few minutes
  python -m benchmarks.throughput --conv-study         # W2 conv formulations

For each cell (workload, K, method, engine) it builds our jitted train step
(``make_train_step`` + Adam 1e-3, state donated) on the peers' exact weights
and batch (:mod:`benchmarks.workloads`), and measures:

* ``compile_s``: ``jit(...).lower(...)`` + ``.compile()`` wall time;
* ``steps_per_s`` = 1 / median step time over ``--steps`` timed steps (and at
  least ``--min-time`` seconds) after ``--warmup`` steps, each step timed to
  ``block_until_ready`` of the new state and metrics; ``examples_per_s`` =
  batch size x ``steps_per_s``; ``cpu_ms``: median process CPU time per step
  (all threads), the work a step costs, steadier than wall time under load;
* memory: ``xla_peak_mb`` = XLA's buffer assignment of the compiled step
  (arguments + outputs - donated aliases + temporaries, from
  ``compiled.memory_analysis()``: the working set the step needs, exact and
  load-independent), and ``rss_delta_mb``, the growth of the process's peak
  resident set (``getrusage`` maxrss) while the cell compiled and ran (0 when
  an earlier cell had already reached a higher peak). On CPU
  ``device.memory_stats()`` is unavailable, so there is no allocator peak.

Outputs ``benchmarks/results/throughput[_TAG].{json,md,png}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import sys
import time
from typing import Callable, Optional, Sequence

import jax
import ml_collections

from benchmarks import workloads as wl
from mtl_jax import aggregation, models, weighting
from mtl_jax.train import engines, optimizer, state as state_lib
from mtl_jax.train.step import make_train_step

RESULTS = os.path.join(os.path.dirname(__file__), "results")
LOSS_LEVEL = ("equal", "uncertainty", "dwa", "rlw", "famo", "gls")
GRAMIAN_WEIGHTINGS = ("gradnorm", "db_mtl_norms", "excess_mtl_norms")
GRADIENT_ENGINES = ("jacobian", "gramian", "representation")


@dataclasses.dataclass(frozen=True)
class MethodSpec:
  """One method: a weighting (by name) and an optional aggregator (by name)."""

  label: str
  weighting: str = "equal"
  aggregator: Optional[str] = None

  @property
  def kind(self) -> str:
    """``loss`` (weighted engine only) or ``grad`` (needs task gradients)."""
    return "loss" if self.engines_needed() == ("weighted",) else "grad"

  def engines_needed(self) -> tuple[str, ...]:
    needs = self.aggregator is not None or self.weighting in GRAMIAN_WEIGHTINGS
    return GRADIENT_ENGINES if needs else ("weighted",)

  def build(self, num_tasks: int):
    """``(Weighting, Aggregator or None)``."""
    del num_tasks
    agg = aggregation.get(self.aggregator) if self.aggregator else None
    return weighting.get(self.weighting), agg


def all_methods() -> list[MethodSpec]:
  """Loss-level methods, every registered aggregator, Gramian weightings."""
  have_w = set(weighting.names())
  specs = [MethodSpec(n, weighting=n) for n in LOSS_LEVEL if n in have_w]
  specs += [MethodSpec(n, aggregator=n) for n in aggregation.names()]
  specs += [MethodSpec(n, weighting=n) for n in GRAMIAN_WEIGHTINGS if n in have_w]
  return specs


def select_methods(names: str) -> list[MethodSpec]:
  """``all``, ``loss``, ``grad`` or a comma list of labels."""
  specs = all_methods()
  if names in ("all", ""):
    return specs
  if names in ("loss", "grad"):
    return [s for s in specs if s.kind == names]
  wanted = names.split(",")
  unknown = set(wanted) - {s.label for s in specs}
  if unknown:
    raise SystemExit(f"Unknown methods {sorted(unknown)}; known: "
                     f"{[s.label for s in specs]}")
  return [s for s in specs if s.label in wanted]


def adam(learning_rate: float = wl.LEARNING_RATE):
  cfg = ml_collections.ConfigDict(dict(name="adam", learning_rate=learning_rate))
  return optimizer.build(cfg, 1000)


@dataclasses.dataclass
class Cell:
  """A compiled step with its state and batch, ready to time."""

  run: Callable
  state: object
  batch: dict
  compile_s: float
  xla_peak_mb: float
  xla_temp_mb: float


def _memory_mb(compiled) -> tuple[float, float]:
  try:
    m = compiled.memory_analysis()
    peak = (m.argument_size_in_bytes + m.output_size_in_bytes
            - m.alias_size_in_bytes + m.temp_size_in_bytes)
    return peak / 2**20, m.temp_size_in_bytes / 2**20
  except Exception:  # pylint: disable=broad-except
    return float("nan"), float("nan")


def build_cell(work: wl.Workload, spec: MethodSpec, engine: str) -> Cell:
  """Compiles our train step for one cell (raises ValueError if not allowed)."""
  w, agg = spec.build(work.num_tasks)
  method = engines.resolve(w, agg, engine, has_representation=True)
  tx = adam()
  partition = models.Partition(work.graphdef, rest=work.rest, **work.params)
  state = jax.jit(lambda: state_lib.init_state(partition, tx, method, seed=0))()
  batch = jax.device_put(work.batch)
  step = jax.jit(make_train_step(work.graphdef, work.tasks, method, tx),
                 donate_argnums=0)
  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  return Cell(compiled, state, batch, compile_s, *_memory_mb(compiled))


def time_steps(run: Callable, state, batch, *, steps: int, min_time: float,
               warmup: int = 0):
  """Per-step wall and process-CPU times (s) of ``state, m = run(state, batch)``.

  Returns ``(wall_times, cpu_times, state)``; every step is synchronised with
  ``block_until_ready``. CPU time (all threads of the process) is what the
  step cost in work; it moves much less than wall time on a loaded machine.
  """
  for _ in range(warmup):
    state, metrics = run(state, batch)
  jax.block_until_ready(state)
  times, cpu, start = [], [], time.perf_counter()
  while len(times) < steps or time.perf_counter() - start < min_time:
    t0, c0 = time.perf_counter(), time.process_time()
    state, metrics = run(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
  return times, cpu, state


def _maxrss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(work: wl.Workload, spec: MethodSpec, engine: str, *, steps: int,
            warmup: int, min_time: float) -> dict:
  """Compiles and times one cell; returns its result row."""
  rss0 = _maxrss_mb()
  cell = build_cell(work, spec, engine)
  times, cpu, _ = time_steps(cell.run, cell.state, cell.batch, steps=steps,
                             min_time=min_time, warmup=warmup)
  median = statistics.median(times)
  return dict(
      workload=work.name, K=work.num_tasks, method=spec.label, kind=spec.kind,
      engine=engine, steps_per_s=1.0 / median,
      examples_per_s=work.batch_size / median, median_ms=1e3 * median,
      cpu_ms=1e3 * statistics.median(cpu), timed_steps=len(times), compile_s=cell.compile_s,
      xla_peak_mb=cell.xla_peak_mb, xla_temp_mb=cell.xla_temp_mb,
      rss_delta_mb=_maxrss_mb() - rss0)


def cases(workloads: Sequence[str], ks: Sequence[int]) -> list[tuple[str, int]]:
  """``(workload, K)`` pairs; W2 exists only at K = 2."""
  return [(w, k) for w in workloads for k in ks if w != "W2" or k == 2]


def default_workloads() -> str:
  """W1 and W2; W3 (ResNet-18) too on an accelerator (minutes per step on CPU)."""
  return "W1,W2" if jax.default_backend() == "cpu" else "W1,W2,W3"


def sweep(methods, workloads, ks, engine_filter, *, steps, warmup, min_time,
          log=print, on_row=None) -> list[dict]:
  """Measures every allowed cell; failures are logged and recorded.

  ``on_row(rows)`` is called after every cell (used to save partial results).
  """
  rows = []
  for name, k in cases(workloads, ks):
    work = wl.load(name, k)
    for spec in methods:
      for engine in spec.engines_needed():
        if engine_filter and engine not in engine_filter and engine != "weighted":
          continue
        try:
          row = measure(work, spec, engine, steps=steps, warmup=warmup,
                        min_time=min_time)
        except ValueError as e:  # the engine does not suit this method
          log(f"skip {name} K={k} {spec.label}/{engine}: {str(e)[:90]}")
          continue
        except Exception as e:  # pylint: disable=broad-except
          log(f"FAIL {name} K={k} {spec.label}/{engine}: {type(e).__name__} {e}")
          rows.append(dict(workload=name, K=k, method=spec.label, kind=spec.kind,
                           engine=engine, error=f"{type(e).__name__}: {e}"[:300]))
          continue
        log(f"{name} K={k:2d} {spec.label:>14}/{engine:<14} "
            f"{row['steps_per_s']:8.1f} steps/s  {row['cpu_ms']:7.2f} ms CPU  "
            f"compile {row['compile_s']:5.1f}s  xla {row['xla_peak_mb']:.1f} MB")
        rows.append(row)
        if on_row is not None:
          on_row(rows)
  return rows


# ----------------------------------------------------------------- W2 conv study


def conv_study(*, steps: int, warmup: int, min_time: float, passes: int = 3,
               log=print) -> list[dict]:
  """Times W2's equal-weighting step for each conv x pool formulation.

  Passes are interleaved (each formulation once per pass) so machine load
  hits all of them alike; the result is the median over all timed steps.
  """
  spec = MethodSpec("equal")
  combos = [(c, p) for c in wl.CONVS for p in wl.POOLS]
  cells = {}
  for conv, pool in combos:
    cells[(conv, pool)] = build_cell(wl.load("W2", 2, conv=conv, pool=pool), spec,
                                     "weighted")
  times = {c: ([], []) for c in combos}
  for i in range(passes):
    for combo in combos:
      cell = cells[combo]
      t, c, cell.state = time_steps(cell.run, cell.state, cell.batch,
                                    steps=max(1, steps // passes),
                                    min_time=min_time / passes,
                                    warmup=warmup if i == 0 else 0)
      times[combo][0].extend(t)
      times[combo][1].extend(c)
  rows = []
  for (conv, pool), (t, c) in times.items():
    med, cpu = statistics.median(t), statistics.median(c)
    rows.append(dict(conv=conv, pool=pool, steps_per_s=1 / med, median_ms=1e3 * med,
                     cpu_ms=1e3 * cpu, compile_s=cells[(conv, pool)].compile_s,
                     xla_peak_mb=cells[(conv, pool)].xla_peak_mb))
    log(f"W2 conv={conv:<9} pool={pool:<13} {1 / med:7.1f} steps/s  "
        f"{1e3 * med:7.1f} ms wall  {1e3 * cpu:7.1f} ms CPU")
  return rows


# ----------------------------------------------------------------- reports


def load_average() -> list[float]:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return []


def environment() -> dict:
  """Versions, devices and load of this run."""
  return dict(jax=jax.__version__, backend=jax.default_backend(),
              devices=[str(d) for d in jax.devices()], cpus=os.cpu_count(),
              load_average=load_average(),
              time=time.strftime("%Y-%m-%d %H:%M:%S"))


def _columns(rows) -> list[tuple[str, int]]:
  return sorted({(r["workload"], r["K"]) for r in rows})


def markdown(rows: list[dict], env: dict) -> str:
  """A steps/s table: one row per method/engine, one column per workload x K."""
  cols = _columns(rows)
  keys = []
  for r in rows:
    if (r["method"], r["engine"]) not in keys:
      keys.append((r["method"], r["engine"]))
  cell = {(r["method"], r["engine"], r["workload"], r["K"]): r for r in rows}
  head = " | ".join(f"{w} K={k}" for w, k in cols)
  lines = [f"Throughput: steps/s (CPU ms/step; compile s; XLA peak MB), jax {env['jax']} on "
           f"{env['backend']}, {env['cpus']} CPUs, load average "
           f"{env['load_average']}, {env['time']}.", "",
           f"| method | engine | {head} |", "|---|---|" + "---|" * len(cols)]
  for method, engine in keys:
    vals = []
    for w, k in cols:
      r = cell.get((method, engine, w, k))
      if r is None:
        vals.append("")
      elif "error" in r:
        vals.append("error")
      else:
        vals.append(f"{r['steps_per_s']:.1f} ({r['cpu_ms']:.1f}; "
                    f"{r['compile_s']:.1f}; {r['xla_peak_mb']:.1f})")
    lines.append(f"| {method} | {engine} | " + " | ".join(vals) + " |")
  return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: str) -> None:
  """Cost (CPU ms/step) vs K on W1, one panel per engine, one line per method.

  CPU time, not wall time: on a shared machine it is the steadier measure.
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.ticker import NullFormatter
  ok = [r for r in rows if "error" not in r and r["workload"] == "W1"]
  engines_ = [e for e in ("weighted",) + GRADIENT_ENGINES + ("representation+fix",)
              if any(r["engine"] == e for r in ok)]
  if not engines_:
    return
  fig, axes = plt.subplots(1, len(engines_), figsize=(4.5 * len(engines_), 4),
                           sharey=True, squeeze=False)
  for ax, engine in zip(axes[0], engines_):
    for method in sorted({r["method"] for r in ok if r["engine"] == engine}):
      pts = sorted((r["K"], r["cpu_ms"]) for r in ok
                   if r["engine"] == engine and r["method"] == method)
      ax.plot(*zip(*pts), marker="o", label=method)
    ax.set(title=f"W1, engine={engine}", xlabel="K (tasks)", xscale="log",
           yscale="log")
    ax.set_xticks([2, 8, 32], ["2", "8", "32"])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("CPU ms / step (median)")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write(rows: list[dict], env: dict, tag: str, extra: Optional[dict] = None,
          plot_it: bool = True) -> str:
  """Writes ``throughput[_tag].{json,md,png}``; returns the path stem."""
  os.makedirs(RESULTS, exist_ok=True)
  stem = os.path.join(RESULTS, "throughput" + (f"_{tag}" if tag else ""))
  with open(stem + ".json", "w") as f:
    json.dump(dict(environment=env, rows=rows, **(extra or {})), f, indent=1)
  with open(stem + ".md", "w") as f:
    f.write(markdown(rows, env))
  if plot_it:
    plot(rows, stem + ".png")
  return stem


def parse(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--methods", default="all",
                 help="'all', 'loss', 'grad' or comma-separated labels")
  p.add_argument("--engines", default="",
                 help="comma list of gradient engines to keep (default: all)")
  p.add_argument("--workloads", default="",
                 help="comma list of W1, W2, W3 (default: W1,W2; W3 too on GPU/TPU)")
  p.add_argument("--ks", default="2,8,32")
  p.add_argument("--steps", type=int, default=20, help="timed steps (minimum)")
  p.add_argument("--warmup", type=int, default=5)
  p.add_argument("--min-time", type=float, default=1.0,
                 help="minimum timed seconds per cell")
  p.add_argument("--tag", default="", help="suffix of the result files")
  p.add_argument("--conv-study", action="store_true",
                 help="only compare W2 conv formulations")
  p.add_argument("--pin", action="store_true",
                 help="pin the process to one core (load-robust work measure)")
  p.add_argument("--list", action="store_true", help="list the methods and exit")
  return p.parse_args(argv)


def pin_to_one_core(core: Optional[int] = None) -> None:
  """Pins this process (and threads it starts later) to one core.

  ``core`` defaults to the first allowed core (``$MTL_JAX_BENCH_CORE`` overrides).

  Call before JAX starts its backend. On a shared, oversubscribed machine,
  multi-threaded wall times mostly measure the scheduler; one core gives the
  work per step.
  """
  if core is None:
    core = int(os.environ.get("MTL_JAX_BENCH_CORE", sorted(os.sched_getaffinity(0))[0]))
  os.sched_setaffinity(0, {core})


def main(argv=None) -> None:
  args = parse(argv)
  if args.pin:
    pin_to_one_core()
  env = environment()
  env["pinned_to_one_core"] = args.pin
  print(f"environment: {env}", flush=True)
  log = lambda s: print(s, flush=True)
  if args.list:
    for s in all_methods():
      print(f"{s.label:>14}  {s.kind}  engines={s.engines_needed()}")
    return
  if args.conv_study:
    rows = conv_study(steps=args.steps, warmup=args.warmup, min_time=args.min_time,
                      log=log)
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "throughput_w2_conv.json")
    with open(path, "w") as f:
      json.dump(dict(environment=env, rows=rows), f, indent=1)
    print(f"wrote {path}")
    return
  rows = sweep(select_methods(args.methods), (args.workloads or default_workloads()).split(","),
               [int(k) for k in args.ks.split(",")],
               [e for e in args.engines.split(",") if e], steps=args.steps,
               warmup=args.warmup, min_time=args.min_time, log=log,
               on_row=lambda rows: write(rows, dict(env, partial=True), args.tag,
                                         plot_it=False))
  env["load_average_end"] = load_average()
  stem = write(rows, env, args.tag)
  print(markdown(rows, env))
  print(f"wrote {stem}.{{json,md,png}}")


if __name__ == "__main__":
  sys.exit(main())
