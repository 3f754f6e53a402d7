"""Our train step against the PyTorch peers, interleaved in one process.

Run from the repository root (needs the ``peers`` extra: torch 2.13 CPU and,
for the Jacobian-descent peers, torchjd)::

  python -m benchmarks.peers                              # every cell
  python -m benchmarks.peers --methods equal,upgrad,mgda --ks 8 --tag quick

Every cell (workload, K, method) runs byte-identical work on both sides: the
same initial weights and batch (``shared/reference/peer_workloads``), Adam
1e-3, fp32. Peers:

* ``torch``: plain PyTorch, summed loss (the peer of our equal weighting);
* ``torchjd <X>``: ``torchjd.autojac.mtl_backward`` (the Jacobian of the task
  losses w.r.t. the trunk's parameters, as our ``jacobian`` engine) followed
  by ``jac_to_grad`` with aggregator ``X`` (the peer of our aggregator X);
* LibMTL is not pip-installable next to torch 2.13 CPU (it requires
  torchvision, which would pull another torch build); its numbers from
  ``PEERS.md`` are rescaled by (plain torch now / plain torch in PEERS.md)
  and reported as ``libmtl~`` (an estimate, not a measurement).

Timing: torch on 2 threads, JAX on its default XLA:CPU pool; after
``--warmup`` steps on both sides, ``--passes`` alternations of (ours: timed
steps, peer: timed steps), each side at least ``--steps`` steps and
``--min-time`` seconds in all; steps/s = 1 / median step time. The ratio
ours/peer therefore sees the same machine load. Outputs
``benchmarks/results/peers[_TAG].{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Callable, Optional

import numpy as np

from benchmarks import throughput as tp
from benchmarks import workloads as wl

# From shared/reference/PEERS.md (2 cores, 2026-11-21): steps/s per case.
PEERS_MD = {
    "torch": {("W1", 2): 929, ("W1", 8): 652, ("W1", 32): 285, ("W2", 2): 45.6},
    "libmtl": {
        "equal": {("W1", 2): 848, ("W1", 8): 583, ("W1", 32): 257, ("W2", 2): 44.0},
        "uncertainty": {("W1", 2): 813, ("W1", 8): 572, ("W1", 32): 256, ("W2", 2): 44.1},
        "dwa": {("W1", 2): 858, ("W1", 8): 570, ("W1", 32): 254, ("W2", 2): 38.9},
        "gradnorm": {("W1", 2): 454, ("W1", 8): 107, ("W1", 32): 15.2, ("W2", 2): 21.8},
        "mgda": {("W1", 2): 471, ("W1", 8): 69, ("W1", 32): 12.3, ("W2", 2): 21.0},
        "pcgrad": {("W1", 2): 389, ("W1", 8): 74, ("W1", 32): 9.5, ("W2", 2): 23.4},
        "cagrad": {("W1", 2): 381, ("W1", 8): 89, ("W1", 32): 7.2, ("W2", 2): 20.5},
        "nash_mtl": {("W1", 2): 58.6, ("W1", 8): 22.4, ("W1", 32): 6.2, ("W2", 2): 14.5},
        "imtl_g": {("W1", 2): 453, ("W1", 8): 76, ("W1", 32): 13.0, ("W2", 2): 22.2},
        "upgrad": {("W1", 2): 466, ("W1", 8): 102, ("W1", 32): 17.0, ("W2", 2): 22.5},
        "aligned_mtl": {("W1", 2): 482, ("W1", 8): 104, ("W1", 32): 12.2, ("W2", 2): 21.6},
    },
}

# Our aggregator name -> torchjd aggregator factory name and arguments.
TORCHJD = {
    "mean": ("Mean", {}), "sum": ("Sum", {}), "upgrad": ("UPGrad", {}),
    "mgda": ("MGDA", {}), "pcgrad": ("PCGrad", {}), "cagrad": ("CAGrad", {"c": 0.5}),
    "nash_mtl": ("NashMTL", {"n_tasks": None}), "imtl_g": ("IMTLG", {}),
    "aligned_mtl": ("AlignedMTL", {}), "dualproj": ("DualProj", {}),
    "graddrop": ("GradDrop", {}), "gradvac": ("GradVac", {}),
    "config": ("ConFIG", {}), "fairgrad": ("FairGrad", {"alpha": 1.0}),
}


# ----------------------------------------------------------------- torch side


def torch_model(work: wl.Workload):
  """``(encoder, heads)`` as PyTorch modules holding the ``.npz`` weights."""
  import torch
  from torch import nn
  if work.name == "W1":
    enc = nn.Module()
    enc.net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
    forward = enc.net
    out = 1
  else:
    enc = nn.Module()
    enc.conv1, enc.conv2 = nn.Conv2d(1, 10, 5), nn.Conv2d(10, 20, 5)
    enc.fc = nn.Linear(720, 50)
    pool, relu = nn.functional.max_pool2d, nn.functional.relu
    forward = lambda x: enc.fc(torch.flatten(
        relu(pool(enc.conv2(relu(pool(enc.conv1(x), 2))), 2)), 1))
    out = 10
  heads = nn.ModuleList(nn.Linear(50 if work.name == "W2" else 256, out)
                        for _ in range(work.num_tasks))
  state = {k[len("enc."):]: torch.from_numpy(v.copy())
           for k, v in work.npz.items() if k.startswith("enc.")}
  enc.load_state_dict(state)
  heads.load_state_dict({f"{k}.{p}": torch.from_numpy(work.npz[f"head{k}.{p}"].copy())
                         for k in range(work.num_tasks) for p in ("weight", "bias")})
  return enc, forward, heads


def torch_batch(work: wl.Workload):
  import torch
  x = torch.from_numpy(work.npz["x"].copy())
  ys = [torch.from_numpy(work.npz[f"y{k}"].copy()) for k in range(work.num_tasks)]
  return x, ys


def torchjd_aggregator(name: str, num_tasks: int):
  """The torchjd aggregator matching our ``name``; ``None`` if there is none."""
  if name not in TORCHJD:
    return None
  import torchjd.aggregation as tja
  cls, kw = TORCHJD[name]
  kw = {k: (num_tasks if v is None else v) for k, v in kw.items()}
  return getattr(tja, cls)(**kw)


def torch_step(work: wl.Workload, aggregator=None) -> Callable[[], None]:
  """One PyTorch train step (summed loss, or torchjd with ``aggregator``)."""
  import torch
  enc, forward, heads = torch_model(work)
  x, ys = torch_batch(work)
  params = list(enc.parameters()) + list(heads.parameters())
  opt = torch.optim.Adam(params, lr=wl.LEARNING_RATE)
  loss_fn = (torch.nn.functional.mse_loss if work.name == "W1"
             else torch.nn.functional.cross_entropy)
  shared = list(enc.parameters())

  def step():
    opt.zero_grad(set_to_none=True)
    z = forward(x)
    losses = [loss_fn(h(z), y) for h, y in zip(heads, ys)]
    if aggregator is None:
      torch.stack(losses).sum().backward()
    else:
      from torchjd.autojac import jac_to_grad, mtl_backward
      mtl_backward(losses, features=z)
      jac_to_grad(shared, aggregator)
    opt.step()
  return step


def torch_losses(work: wl.Workload) -> np.ndarray:
  """The peer's initial per-task losses (a cross-check of the loading)."""
  import torch
  enc, forward, heads = torch_model(work)
  x, ys = torch_batch(work)
  loss_fn = (torch.nn.functional.mse_loss if work.name == "W1"
             else torch.nn.functional.cross_entropy)
  with torch.no_grad():
    z = forward(x)
    return np.array([float(loss_fn(h(z), y)) for h, y in zip(heads, ys)])


def time_torch(step: Callable[[], None], *, steps: int, min_time: float,
               warmup: int = 0) -> tuple[list[float], list[float]]:
  """Per-step wall and process-CPU times (s) of a PyTorch step."""
  for _ in range(warmup):
    step()
  times, cpu, start = [], [], time.perf_counter()
  while len(times) < steps or time.perf_counter() - start < min_time:
    t0, c0 = time.perf_counter(), time.process_time()
    step()
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
  return times, cpu


# ----------------------------------------------------------------- interleaving


def duel(cell: tp.Cell, peer: Callable[[], None], *, steps: int, warmup: int,
         min_time: float, passes: int) -> dict:
  """Median wall and CPU step times (s) of ours and the peer, in alternation."""
  acc = {k: [] for k in ("ours", "ours_cpu", "peer", "peer_cpu")}
  _, _, cell.state = tp.time_steps(cell.run, cell.state, cell.batch, steps=0,
                                   min_time=0.0, warmup=warmup)
  time_torch(peer, steps=0, min_time=0.0, warmup=warmup)
  per = max(1, -(-steps // passes))
  for _ in range(passes):
    t, c, cell.state = tp.time_steps(cell.run, cell.state, cell.batch, steps=per,
                                     min_time=min_time / passes)
    acc["ours"] += t
    acc["ours_cpu"] += c
    t, c = time_torch(peer, steps=per, min_time=min_time / passes)
    acc["peer"] += t
    acc["peer_cpu"] += c
  return {k: statistics.median(v) for k, v in acc.items()}


def peer_of(spec: tp.MethodSpec, num_tasks: int):
  """``(peer label, torchjd aggregator or None)``; label ``None``: no peer."""
  if spec.kind == "loss":
    return ("torch", None) if spec.label == "equal" else (None, None)
  if spec.aggregator is None:
    return None, None
  agg = torchjd_aggregator(spec.aggregator, num_tasks)
  return (f"torchjd {TORCHJD[spec.aggregator][0]}", agg) if agg is not None else (None, None)


def libmtl_estimate(label: str, case, plain_now: Optional[float]) -> Optional[float]:
  ref = PEERS_MD["libmtl"].get(label, {}).get(case)
  if ref is None or plain_now is None:
    return None
  return ref * plain_now / PEERS_MD["torch"][case]


def run_case(work: wl.Workload, specs, engine_filter, *, steps, warmup, min_time,
             passes, log=print) -> list[dict]:
  """All cells of one (workload, K)."""
  case = (work.name, work.num_tasks)
  plain_step = torch_step(work)
  rows, plain_now = [], None
  for spec in specs:
    label, agg = peer_of(spec, work.num_tasks)
    peer = plain_step if label == "torch" else (torch_step(work, agg) if agg else plain_step)
    peer_label = label or "torch"
    for engine in spec.engines_needed():
      if engine_filter and engine != "weighted" and engine not in engine_filter:
        continue
      try:
        cell = tp.build_cell(work, spec, engine)
      except ValueError as e:
        log(f"skip {case} {spec.label}/{engine}: {str(e)[:80]}")
        continue
      d = duel(cell, peer, steps=steps, warmup=warmup, min_time=min_time,
               passes=passes)
      ours, theirs = d["ours"], d["peer"]
      if peer_label == "torch":
        plain_now = 1 / theirs
      row = dict(workload=work.name, K=work.num_tasks, method=spec.label,
                 kind=spec.kind, engine=engine, ours_steps_per_s=1 / ours,
                 peer=peer_label, peer_steps_per_s=1 / theirs, ratio=theirs / ours,
                 ours_cpu_ms=1e3 * d["ours_cpu"], peer_cpu_ms=1e3 * d["peer_cpu"],
                 cpu_ratio=d["peer_cpu"] / d["ours_cpu"],
                 libmtl_est_steps_per_s=libmtl_estimate(spec.label, case, plain_now))
      rows.append(row)
      log(f"{work.name} K={work.num_tasks:2d} {spec.label:>12}/{engine:<14} ours "
          f"{1 / ours:8.1f}  {peer_label:<18} {1 / theirs:8.1f}  ratio {theirs / ours:5.2f}"
          f"  cpu ratio {d['peer_cpu'] / d['ours_cpu']:5.2f}")
  return rows


# ----------------------------------------------------------------- targets


def _faster_peer(row) -> float:
  est = row.get("libmtl_est_steps_per_s") or 0.0
  return max(row["peer_steps_per_s"] if row["peer"] != "torch" or row["kind"] == "loss"
             else 0.0, est)


def targets(rows: list[dict]) -> list[dict]:
  """The issue's targets, evaluated on the rows of one run.

  ``value`` uses wall time, ``value_cpu`` process CPU time (steadier on a
  loaded machine: a long step is preempted more often than a short one, which
  biases wall ratios towards the faster side). Ratios against the LibMTL
  estimate exist in wall time only.
  """
  out = []
  for r in rows:
    case = f"{r['workload']} K={r['K']}"
    if r["method"] == "equal" and r["peer"] == "torch":
      goal = 1.5 if r["workload"] == "W1" else 1.0
      out.append(dict(target=f"equal >= {goal}x plain torch", case=case,
                      value=r["ratio"], value_cpu=r["cpu_ratio"], goal=goal))
    if r["kind"] == "grad" and r["workload"] == "W1" and r["K"] in (8, 32):
      fp = _faster_peer(r)
      if fp:
        goal = 10.0 if r["method"] == "nash_mtl" else 3.0
        measured_is_faster = r["peer"] != "torch" and r["peer_steps_per_s"] >= fp
        out.append(dict(target=f"{r['method']}/{r['engine']} >= {goal}x faster peer",
                        case=case, value=r["ours_steps_per_s"] / fp,
                        value_cpu=r["cpu_ratio"] if measured_is_faster else None,
                        goal=goal))
  eq = {(r["workload"], r["K"]): r for r in rows if r["method"] == "equal"}
  for r in rows:
    base = eq.get((r["workload"], r["K"]))
    if r["engine"].startswith("representation") and r["K"] == 8 and base:
      out.append(dict(target=f"{r['method']}/{r['engine']} cost <= 2x equal",
                      case=f"{r['workload']} K=8",
                      value=base["ours_steps_per_s"] / r["ours_steps_per_s"],
                      value_cpu=r["ours_cpu_ms"] / base["ours_cpu_ms"], goal=2.0,
                      lower_is_better=True))
  for g in out:
    ok = (lambda v: v is not None and (v <= g["goal"] if g.get("lower_is_better")
                                       else v >= g["goal"]))
    g["met"], g["met_cpu"] = ok(g["value"]), ok(g["value_cpu"])
  return out


def markdown(rows: list[dict], goals: list[dict], env: dict) -> str:
  lines = [f"Ours vs peers, interleaved in one process; jax {env['jax']}, torch "
           f"{env.get('torch')}, torchjd {env.get('torchjd')}, {env['cpus']} CPUs, "
           f"load average {env['load_average']} -> {env.get('load_average_end')}, "
           f"{env['time']}.", "",
           "| case | method | engine | ours steps/s | peer | peer steps/s | "
           "ours/peer (wall) | ours/peer (CPU time) | libmtl~ steps/s | ours/libmtl~ |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    est = r.get("libmtl_est_steps_per_s")
    est_s = f"{est:.1f} | {r['ours_steps_per_s'] / est:.2f}" if est else " | "
    lines.append(f"| {r['workload']} K={r['K']} | {r['method']} | {r['engine']} | "
                 f"{r['ours_steps_per_s']:.1f} | {r['peer']} | "
                 f"{r['peer_steps_per_s']:.1f} | {r['ratio']:.2f} | {r['cpu_ratio']:.2f} | "
                 f"{est_s} |")
  lines += ["", "| target | case | wall | met | CPU time | met |",
            "|---|---|---|---|---|---|"]
  yes = lambda b: "yes" if b else "NO"
  for g in goals:
    cpu = g["value_cpu"]
    cpu_s = f"{cpu:.2f} | {yes(g['met_cpu'])}" if cpu is not None else "- | -"
    lines.append(f"| {g['target']} | {g['case']} | {g['value']:.2f} | "
                 f"{yes(g['met'])} | {cpu_s} |")
  return "\n".join(lines) + "\n"


def environment() -> dict:
  import torch
  env = tp.environment()
  env["torch"] = torch.__version__
  env["torch_threads"] = torch.get_num_threads()
  try:
    from importlib.metadata import version
    env["torchjd"] = version("torchjd")
  except Exception:  # pylint: disable=broad-except
    env["torchjd"] = None
  return env


def parse(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--methods", default="equal,mean,upgrad,mgda,pcgrad,cagrad,nash_mtl,"
                 "imtl_g,aligned_mtl,dualproj,graddrop,gradvac,config,fairgrad",
                 help="'all', 'grad' or comma-separated labels")
  p.add_argument("--engines", default="", help="gradient engines to keep")
  p.add_argument("--workloads", default="W1,W2")
  p.add_argument("--ks", default="2,8,32")
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--warmup", type=int, default=5)
  p.add_argument("--min-time", type=float, default=2.0,
                 help="minimum timed seconds per side and cell")
  p.add_argument("--passes", type=int, default=4)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--pin", action="store_true",
                 help="pin the process to one core and use 1 torch thread: a "
                      "load-robust measure of the work per step")
  p.add_argument("--tag", default="")
  return p.parse_args(argv)


def main(argv=None) -> None:
  args = parse(argv)
  import torch
  if args.pin:
    tp.pin_to_one_core()
    args.threads = 1
  torch.set_num_threads(args.threads)
  env = environment()
  env["pinned_to_one_core"] = args.pin
  print(f"environment: {env}", flush=True)
  specs = tp.select_methods(args.methods)
  no_peer = sorted(set(args.workloads.split(",")) - set(wl.PEER_WORKLOADS))
  if no_peer:
    raise SystemExit(f"No PyTorch peer for workload(s) {no_peer}; peers run "
                     f"{list(wl.PEER_WORKLOADS)} (use benchmarks.throughput for W3).")
  rows = []
  for name, k in tp.cases(args.workloads.split(","), [int(k) for k in args.ks.split(",")]):
    work = wl.load(name, k)
    rows += run_case(work, specs, [e for e in args.engines.split(",") if e],
                     steps=args.steps, warmup=args.warmup, min_time=args.min_time,
                     passes=args.passes, log=lambda s: print(s, flush=True))
  env["load_average_end"] = tp.load_average()
  goals = targets(rows)
  os.makedirs(tp.RESULTS, exist_ok=True)
  stem = os.path.join(tp.RESULTS, "peers" + (f"_{args.tag}" if args.tag else ""))
  with open(stem + ".json", "w") as f:
    json.dump(dict(environment=env, rows=rows, targets=goals), f, indent=1)
  text = markdown(rows, goals, env)
  with open(stem + ".md", "w") as f:
    f.write(text)
  print(text)
  print(f"wrote {stem}.{{json,md}}")


if __name__ == "__main__":
  sys.exit(main())
