"""The two-task toy problem (CAGrad, Nash-MTL, FAMO) for every method.

Run from the repository root::

  python -m benchmarks.toy                               # every method
  python -m benchmarks.toy --iters 2000 --methods equal,cagrad --out /tmp/toy

Each method optimises :func:`mtl_jax.data.toy.toy_losses` from the five
standard starts (:data:`~mtl_jax.data.toy.TOY_STARTS`) with Adam (lr 1e-3).
One run is ONE compiled program: ``jax.lax.scan`` over the iterations,
``jax.vmap`` over the starts, Adam (optax) inside the scan. At every
iteration the per-task gradients come from
:func:`~mtl_jax.aggregation.per_task_grads` (the ``[2, 2]`` Jacobian) and

* an aggregation method (every name in :func:`mtl_jax.aggregation.names`)
  turns them into the update with ``method.update(grads, state, step=step,
  key=fold_in(key, step), losses=losses)``;
* a weighting method (``equal``: the plain summed loss, and ``famo``) gives
  weights ``w`` and the update is ``sum_t w_t grad L_t``.

Settings per method (all from the papers' toy code, none tuned here):

* ``scale_l1``: the Nash-MTL and FAMO papers (and their code) multiply L1 by
  0.1 (``nash_mtl``, ``famo``); every other method uses the CAGrad paper's
  unscaled problem. ``--scale-l1 0.1`` gives every method the scaled problem
  (the Nash-MTL/FAMO figures run all their baselines on it). Scaling L1 by a
  positive constant does not change the Pareto set. Tables report the
  *unscaled* L1 and L2.
* iterations: 100k (CAGrad, c = 0.5; and ``equal``, the longest of the
  papers' budgets, so that its failures are not for lack of steps), 35k
  (Nash-MTL), 50k (FAMO and everything else); ``--iters`` overrides all.
  ``--starts cagrad`` uses the CAGrad paper's three starts instead.
* FAMO: the official toy code shifts the losses by their lower bounds,
  ``min_losses = (-21 scale_l1, -21)`` (FAMO needs positive losses; the toy
  losses reach -20), and uses ``gamma = 0`` (no logit weight decay): we pass
  ``losses - min_losses`` to ``weighting.get("famo", weight_decay=0.0)``.
* all other hyperparameters are the library defaults (CAGrad c = 0.5,
  Nash-MTL max_norm = 1, ...). The update of ``theta`` is not clipped.

The Pareto set (derived numerically, :func:`pareto_set`): a Pareto-optimal
point with non-zero gradients has anti-parallel task gradients, i.e. the
cross product ``det[grad L1, grad L2]`` vanishes with a negative dot product.
Brute-force non-dominance on a 2001 x 2001 grid of ``[-10, 10]^2``
(:func:`non_dominated_grid`) puts every non-dominated grid point in the lower
half-plane with ``x1`` in ``[-7, 7]`` and ``x2`` near -8.4; so for each of
14001 values ``x1`` in ``[-7, 7]`` we find the root ``x2`` in ``[-10, -6]`` of
the cross product by bisection: a smooth curve (``x2`` from -8.43 at the ends
to -8.36 at ``x1 = 0``) along which L1 falls and L2 rises monotonically, and
whose end points are the two single-task minima. The grid only checks it
(grid points deviate by up to ~0.3 in ``x2``, where the losses are very flat).

"Reached the Pareto set" means: Euclidean distance from the final point to
that curve below ``PARETO_TOL = 0.05`` (parameter space). We also report the
cosine of the two task gradients at the final point, but do not use it as
the criterion: on the upper plateau (``x2 > 8``) ``tanh`` saturates, both
gradients are almost horizontal and opposite (cosine < -0.9999 on much of
it), so a cosine test would call those dominated points Pareto-stationary.

For every run the table also gives the final losses, the *dominance gap*
(how much some Pareto point improves both losses: ~0 for points that are
Pareto-optimal up to the flatness of ``x2``, ~20 on the upper plateau),
how far the point moved in the last 10% of the iterations (stuck or still
travelling) and the largest update norm fed to Adam with its step (one
huge update inflates Adam's second moment and freezes the run for
thousands of steps).

Outputs ``OUT.png`` (one panel per method: the 5 trajectories over the
contours of L1 + L2, the Pareto set, starts and end points), ``OUT.json`` and
``OUT.md`` with ``OUT = benchmarks/results/toy`` unless ``--out`` is given
(``benchmarks/results/toy_l1x0.1`` holds the ``--scale-l1 0.1`` run).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import os
import time
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from mtl_jax import aggregation, weighting
from mtl_jax.data.toy import CAGRAD_STARTS, TOY_STARTS, toy_losses

RESULTS = os.path.join(os.path.dirname(__file__), "results")
LEARNING_RATE = 1e-3
DEFAULT_ITERS = 50_000
PAPER_ITERS = {"cagrad": 100_000, "nash_mtl": 35_000, "famo": 50_000,
               "equal": 100_000}
PAPER_SCALE_L1 = {"nash_mtl": 0.1, "famo": 0.1}
WEIGHTINGS = ("equal", "famo")
WEIGHTING_HPARAMS = {"famo": {"weight_decay": 0.0}}   # FAMO's toy: gamma = 0
FAMO_MIN_LOSS = -21.0          # lower bound of each toy loss (FAMO's code)
PARETO_TOL = 0.05              # distance to the Pareto set, parameter space
DOMAIN = (-10.0, 10.0)
STARTS = {"toy": TOY_STARTS, "cagrad": CAGRAD_STARTS}


# ---------------------------------------------------------------------------
# Methods.
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MethodSpec:
  """One method of the benchmark and the toy settings it runs with."""

  name: str
  kind: str          # "weighting" or "aggregation"
  scale_l1: float    # L1 is multiplied by this during optimisation
  iters: int
  hparams: tuple = ()  # (name, value) pairs overriding the method's defaults


def all_methods() -> tuple[str, ...]:
  """Equal weighting, every aggregation method, then FAMO."""
  return ("equal",) + tuple(aggregation.names()) + ("famo",)


def method_spec(name: str, iters: Optional[int] = None,
                scale_l1: Optional[float] = None) -> MethodSpec:
  """The paper settings of ``name``, with optional overrides."""
  if name not in all_methods():
    raise ValueError(f"Unknown method {name!r}; choose from {all_methods()}.")
  kind = "weighting" if name in WEIGHTINGS else "aggregation"
  scale = PAPER_SCALE_L1.get(name, 1.0) if scale_l1 is None else scale_l1
  steps = PAPER_ITERS.get(name, DEFAULT_ITERS) if iters is None else iters
  return MethodSpec(name, kind, float(scale), int(steps))


def _weighting_direction(spec: MethodSpec):
  """``(init, direction)`` for a loss-level method: ``sum_t w_t grad L_t``."""
  hparams = {**WEIGHTING_HPARAMS.get(spec.name, {}), **dict(spec.hparams)}
  method = weighting.get(spec.name, **hparams)
  shift = (jnp.array([FAMO_MIN_LOSS * spec.scale_l1, FAMO_MIN_LOSS])
           if spec.name == "famo" else jnp.zeros((2,)))

  def direction(theta, state, step, key):
    losses, grads = per_task(theta, spec.scale_l1)
    extras = {"gramian": aggregation.gramian(grads)} if method.needs else {}
    w, state = method.update(losses - shift, state, step=step, key=key,
                             **extras)
    return jax.lax.stop_gradient(w) @ grads, losses, state

  return lambda theta: method.init(2), direction


def _aggregation_direction(spec: MethodSpec):
  """``(init, direction)`` for a gradient-aggregation method."""
  method = aggregation.get(spec.name, **dict(spec.hparams))

  def direction(theta, state, step, key):
    losses, grads = per_task(theta, spec.scale_l1)
    d, state = method.update(grads, state, step=step, key=key, losses=losses)
    return d, losses, state

  return lambda theta: method.init(2, theta), direction


def per_task(theta: jax.Array, scale_l1: float):
  """The toy losses ``[2]`` and their gradients ``[2, 2]`` at ``theta``."""
  return aggregation.per_task_grads(
      lambda p: toy_losses(p, scale_l1=scale_l1), theta)


def make_direction(spec: MethodSpec):
  """``init(theta) -> state`` and ``direction(theta, state, step, key)``."""
  if spec.kind == "weighting":
    return _weighting_direction(spec)
  return _aggregation_direction(spec)


# ---------------------------------------------------------------------------
# Optimisation: one compiled program per method.
# ---------------------------------------------------------------------------

class Run(NamedTuple):
  """Trajectories of one method from every start."""

  path: np.ndarray          # [S, iters + 1, 2] theta, the start first
  update_norms: np.ndarray  # [S, iters] ||direction|| given to Adam


def optimise(spec: MethodSpec, starts: Sequence[Sequence[float]],
             seed: int = 0) -> Run:
  """Adam from every start: ``lax.scan`` over iterations, ``vmap`` over starts.

  One compiled program; the method gets ``step`` and ``fold_in(key, step)``.
  """
  init, direction = make_direction(spec)
  adam = optax.adam(LEARNING_RATE)
  base_key = jax.random.key(seed)

  def one_start(theta0):
    def body(carry, step):
      theta, opt_state, state = carry
      key = jax.random.fold_in(base_key, step)
      d, _, state = direction(theta, state, step, key)
      updates, opt_state = adam.update(d, opt_state, theta)
      theta = optax.apply_updates(theta, updates)
      return (theta, opt_state, state), (theta, jnp.linalg.norm(d))

    carry = (theta0, adam.init(theta0), init(theta0))
    steps = jnp.arange(spec.iters, dtype=jnp.int32)
    _, (path, norms) = jax.lax.scan(body, carry, steps)
    return jnp.concatenate([theta0[None], path]), norms

  path, norms = jax.jit(jax.vmap(one_start))(jnp.asarray(starts, jnp.float32))
  return Run(np.asarray(path), np.asarray(norms))


# ---------------------------------------------------------------------------
# The Pareto set.
# ---------------------------------------------------------------------------

_losses = jax.jit(jax.vmap(toy_losses))                # [N, 2] -> [N, 2]
_jacobians = jax.jit(jax.vmap(jax.jacrev(toy_losses)))  # [N, 2] -> [N, 2, 2]


def losses_at(points: np.ndarray) -> np.ndarray:
  """The unscaled losses ``[N, 2]`` at ``points [N, 2]``."""
  return np.asarray(_losses(jnp.asarray(points, jnp.float32)), np.float64)


def _cross(theta: jax.Array) -> jax.Array:
  """``det[grad L1, grad L2]``: zero where the task gradients are parallel."""
  j = jax.jacrev(toy_losses)(theta)
  return j[0, 0] * j[1, 1] - j[0, 1] * j[1, 0]


def _root_x2(x1: jax.Array, lo: float = -10.0, hi: float = -6.0,
             iters: int = 60) -> jax.Array:
  """Bisection for the ``x2`` in ``[lo, hi]`` where ``_cross`` changes sign."""
  f = lambda x2: _cross(jnp.stack([x1, x2]))
  f_lo = f(jnp.asarray(lo, x1.dtype))

  def body(_, bounds):
    a, b = bounds
    mid = 0.5 * (a + b)
    same = jnp.sign(f(mid)) == jnp.sign(f_lo)
    return jnp.where(same, mid, a), jnp.where(same, b, mid)

  a, b = jax.lax.fori_loop(0, iters, body, (jnp.asarray(lo, x1.dtype),
                                            jnp.asarray(hi, x1.dtype)))
  return 0.5 * (a + b)


def pareto_set(num: int = 14001) -> np.ndarray:
  """Points ``[num, 2]`` of the Pareto set, ``x1`` evenly spaced in [-7, 7].

  For each ``x1`` the ``x2`` in ``[-10, -6]`` where the task gradients are
  anti-parallel (see the module docstring for the derivation).
  """
  x1 = jnp.linspace(-7.0, 7.0, num)
  x2 = jax.jit(jax.vmap(_root_x2))(x1)
  return np.stack([np.asarray(x1), np.asarray(x2)], axis=1)


def non_dominated_grid(num: int = 2001, lim: Sequence[float] = DOMAIN
                       ) -> np.ndarray:
  """Brute force: the grid points ``[M, 2]`` no other grid point dominates."""
  axis = np.linspace(lim[0], lim[1], num, dtype=np.float32)
  x1, x2 = np.meshgrid(axis, axis, indexing="ij")
  points = np.stack([x1.ravel(), x2.ravel()], axis=1)
  losses = losses_at(points)
  order = np.lexsort((losses[:, 1], losses[:, 0]))   # by L1, then L2
  l2 = losses[order, 1]
  best_before = np.concatenate([[np.inf], np.minimum.accumulate(l2)[:-1]])
  return points[order[l2 < best_before]]


def pareto_distance(points: np.ndarray, curve: np.ndarray) -> np.ndarray:
  """Euclidean distance ``[N]`` from each point to the nearest curve point."""
  diff = np.asarray(points)[:, None, :] - curve[None, :, :]
  return np.sqrt(np.min(np.sum(diff * diff, axis=-1), axis=1))


def gradient_cosine(points: np.ndarray) -> np.ndarray:
  """Cosine ``[N]`` between the two task gradients (-1: anti-parallel)."""
  jac = np.asarray(_jacobians(jnp.asarray(points, jnp.float32)), np.float64)
  dot = np.sum(jac[:, 0] * jac[:, 1], axis=-1)
  norms = np.linalg.norm(jac[:, 0], axis=-1) * np.linalg.norm(jac[:, 1], axis=-1)
  return dot / np.maximum(norms, 1e-30)


def dominance_gap(points: np.ndarray, curve: np.ndarray) -> np.ndarray:
  """How much some Pareto point improves *both* losses, ``[N]``.

  ``max_p min_t (L_t(x) - L_t(p))`` over the curve samples ``p`` (unscaled
  losses): > 0 when ``x`` is dominated, <= 0 when no sample dominates it.
  With :func:`pareto_set`'s default 14001 samples the losses change by at
  most ~2e-3 between neighbours, so the gap is resolved to ~1e-3.
  """
  curve_losses = losses_at(curve)
  return np.asarray([
      np.max(np.min(loss[None, :] - curve_losses, axis=1))
      for loss in losses_at(points)])


# ---------------------------------------------------------------------------
# Results: table and plot.
# ---------------------------------------------------------------------------

def summarise(spec: MethodSpec, run: Run, curve: np.ndarray, seconds: float,
              tol: float = PARETO_TOL) -> dict:
  """One method's row: per-start final point, losses, distance, reached.

  Also the largest update norm and the step where it happened next to the
  median norm: a spike freezes Adam (its second moment) for thousands of
  steps, so it explains runs that stop early.
  """
  path, norms = run
  final = path[:, -1]
  tail = path[:, max(0, path.shape[1] - 1 - path.shape[1] // 10)]
  losses = losses_at(final)
  dist = pareto_distance(final, curve)
  gap = dominance_gap(final, curve)
  cos = gradient_cosine(final)
  runs = []
  for i, start in enumerate(path[:, 0]):
    runs.append(dict(
        start=[float(v) for v in start], final=[float(v) for v in final[i]],
        l1=float(losses[i, 0]), l2=float(losses[i, 1]),
        distance=float(dist[i]), gap=float(gap[i]), cosine=float(cos[i]),
        moved_last_10pct=float(np.linalg.norm(final[i] - tail[i])),
        max_update_norm=float(np.max(norms[i])),
        max_update_step=int(np.argmax(norms[i])),
        median_update_norm=float(np.median(norms[i])),
        finite=bool(np.all(np.isfinite(path[i])) and np.all(np.isfinite(norms[i]))),
        reached=bool(dist[i] < tol)))
  return dict(method=spec.name, kind=spec.kind, scale_l1=spec.scale_l1,
              iters=spec.iters, seconds=round(seconds, 1),
              reached=sum(r["reached"] for r in runs), runs=runs)


def _fmt_point(p: Sequence[float]) -> str:
  return f"({p[0]:.2f}, {p[1]:.2f})"


def markdown(rows: list[dict], tol: float) -> str:
  """The results as a markdown report: a summary and a per-start table."""
  starts = [_fmt_point(r["start"]) for r in rows[0]["runs"]]
  lines = [
      "# Two-task toy problem (CAGrad / Nash-MTL / FAMO)", "",
      f"Adam lr {LEARNING_RATE}; reached = distance to the Pareto set < {tol} "
      "(parameter space). Otherwise: d = that distance, gap = how much some "
      "Pareto point improves both (unscaled) losses. Generated by "
      "`python -m benchmarks.toy`; see its docstring for the settings.", "",
      "| method | L1 scale | iters | reached | " + " | ".join(starts) + " |",
      "|---|---|---|---|" + "---|" * len(starts)]
  for r in rows:
    marks = ["yes" if x["reached"] else
             f"no (d {x['distance']:.2f}, gap {x['gap']:.2g})" for x in r["runs"]]
    lines.append(f"| {r['method']} | {r['scale_l1']:g} | {r['iters']} | "
                 f"{r['reached']}/{len(r['runs'])} | " + " | ".join(marks) + " |")
  lines += ["", "## Final points", "",
            "| method | start | final | L1 | L2 | distance | gap | cos(g1, g2) | "
            "moved in last 10% | max ‖d‖ (step) | median ‖d‖ | reached |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    for x in r["runs"]:
      lines.append(
          f"| {r['method']} | {_fmt_point(x['start'])} | {_fmt_point(x['final'])}"
          f" | {x['l1']:.3f} | {x['l2']:.3f} | {x['distance']:.3f} | "
          f"{x['gap']:.3g} | {x['cosine']:.4f} | {x['moved_last_10pct']:.3f} | "
          f"{x['max_update_norm']:.3g} ({x['max_update_step']}) | "
          f"{x['median_update_norm']:.3g} | {'yes' if x['reached'] else 'no'} |")
  return "\n".join(lines) + "\n"


def plot(rows: list[dict], paths: dict, curve: np.ndarray, filename: str):
  """One panel per method: trajectories over the contours of L1 + L2."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  axis = np.linspace(*DOMAIN, 300, dtype=np.float32)
  x1, x2 = np.meshgrid(axis, axis, indexing="ij")
  grid = np.stack([x1.ravel(), x2.ravel()], axis=1)
  total = losses_at(grid).sum(1).reshape(x1.shape)
  cols = min(4, len(rows))
  nrows = -(-len(rows) // cols)
  fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 4.2 * nrows),
                           squeeze=False)
  colors = plt.cm.tab10(np.arange(10))
  for ax, row in zip(axes.ravel(), rows):
    ax.contourf(x1, x2, total, levels=30, cmap="Greys", alpha=0.6)
    ax.plot(curve[:, 0], curve[:, 1], color="tab:red", lw=3, alpha=0.6,
            label="Pareto set")
    for i, p in enumerate(paths[row["method"]]):
      reached = row["runs"][i]["reached"]
      ax.plot(p[:, 0], p[:, 1], color=colors[i], lw=1.5)
      ax.plot(*p[0], "o", color=colors[i], ms=6)
      ax.plot(*p[-1], "*" if reached else "X", color=colors[i], ms=11,
              mec="black", mew=0.7)
    ax.set_title(f"{row['method']}  (L1x{row['scale_l1']:g}, "
                 f"{row['iters'] // 1000}k it): {row['reached']}/"
                 f"{len(row['runs'])}", fontsize=10)
    ax.set_xlim(*DOMAIN)
    ax.set_ylim(*DOMAIN)
    ax.set_aspect("equal")
  for ax in axes.ravel()[len(rows):]:
    ax.axis("off")
  fig.suptitle("Toy problem, Adam lr 1e-3: o start, * end on the Pareto set "
               "(red), X end elsewhere; contours of L1 + L2", fontsize=12)
  fig.tight_layout(rect=(0, 0, 1, 0.98))
  fig.savefig(filename, dpi=80)
  plt.close(fig)


# ---------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------

def run_all(names: Sequence[str], iters: Optional[int], scale_l1: Optional[float],
            starts: Sequence[Sequence[float]], tol: float = PARETO_TOL,
            log: Callable[[str], None] = tqdm.write):
  """Optimises every method; returns the table rows and the trajectories."""
  curve = pareto_set()
  rows, paths = [], {}
  for name in tqdm(names, desc="toy", unit="method", disable=None):
    spec = method_spec(name, iters, scale_l1)
    t0 = time.perf_counter()
    run = optimise(spec, starts)
    seconds = time.perf_counter() - t0
    rows.append(summarise(spec, run, curve, seconds, tol))
    paths[name] = run.path
    log(f"{name:12s} L1x{spec.scale_l1:g} {spec.iters:6d} it {seconds:6.1f} s: "
        f"reached {rows[-1]['reached']}/{len(starts)}")
  return rows, paths, curve


def source_hashes(names: Sequence[str]) -> dict:
  """Short sha256 of each method's source module (the code that ran)."""
  hashes = {}
  for name in names:
    if method_spec(name).kind == "weighting":
      fn = weighting.get(name, **WEIGHTING_HPARAMS.get(name, {})).update
    else:
      method = aggregation.get(name)
      fn = method.weights or method.update    # update may come from base
    with open(inspect.getsourcefile(fn), "rb") as f:
      hashes[name] = hashlib.sha256(f.read()).hexdigest()[:12]
  shared = hashlib.sha256()
  folder = os.path.dirname(inspect.getsourcefile(aggregation.gramian))
  for helper in ("base.py", "_qp.py", "_solvers.py"):
    with open(os.path.join(folder, helper), "rb") as f:
      shared.update(f.read())
  hashes["aggregation/{base,_qp,_solvers}"] = shared.hexdigest()[:12]
  return hashes


def parse_args(argv=None) -> argparse.Namespace:
  """The command line."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--methods", default=",".join(all_methods()),
                      help="comma-separated names (default: all)")
  parser.add_argument("--iters", type=int, default=None,
                      help="iterations for every method (default: per paper)")
  parser.add_argument("--scale-l1", type=float, default=None,
                      help="L1 scale for every method (default: per paper)")
  parser.add_argument("--starts", choices=sorted(STARTS), default="toy")
  parser.add_argument("--tol", type=float, default=PARETO_TOL)
  parser.add_argument("--out", default=os.path.join(RESULTS, "toy"),
                      help="output prefix: writes OUT.png, OUT.json, OUT.md")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  names = [n for n in args.methods.split(",") if n]
  starts = STARTS[args.starts]
  rows, paths, curve = run_all(names, args.iters, args.scale_l1, starts, args.tol)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  meta = dict(learning_rate=LEARNING_RATE, tol=args.tol, starts=args.starts,
              pareto_set="x1 in [-7, 7], x2 = root of det[grad L1, grad L2]",
              jax=jax.__version__, backend=jax.default_backend(),
              source_sha256=source_hashes(names))
  with open(args.out + ".json", "w") as f:
    json.dump(dict(meta=meta, methods=rows), f, indent=1)
  with open(args.out + ".md", "w") as f:
    f.write(markdown(rows, args.tol))
  plot(rows, paths, curve, args.out + ".png")
  print(f"wrote {args.out}.{{png,json,md}}")


if __name__ == "__main__":
  main()
