"""Tiny dense task sets, inputs and batches shared by the dense-architecture tests."""

import numpy as np

from mtl_jax import tasks as tasks_lib

SHAPE = (16, 16, 3)
# Three dense tasks (NYUv2's kinds) and a per-example task mixed in.
TASKS = tasks_lib.from_config({
    "seg": dict(kind="segmentation", num_classes=4),
    "depth": dict(kind="depth"),
    "normal": dict(kind="normals"),
    "cls": dict(kind="multiclass", num_classes=3),
})
DENSE_ONLY = tuple(t for t in TASKS if t.dense)
SEG = tuple(t for t in TASKS if t.name == "seg")


def expected_shapes(batch, tasks=TASKS, shape=SHAPE):
  """``{task: output shape}``: ``[B, H, W, out]`` for dense tasks, ``[B, out]`` else."""
  return {t.name: (batch, *shape[:2], t.out_features) if t.dense else (batch, t.out_features)
          for t in tasks}


def inputs(batch=2, shape=SHAPE, seed=0):
  return np.random.default_rng(seed).random((batch, *shape), np.float32)


def batch(seed=0, size=2, shape=SHAPE, tasks=TASKS):
  """A batch of random dense targets, with missing pixels (label -1, depth 0,
  zero normals) so the masks matter."""
  rng = np.random.default_rng(seed)
  h, w = shape[:2]
  seg = rng.integers(0, 4, (size, h, w)).astype(np.int32)
  seg[:, 0] = -1
  depth = rng.uniform(0.5, 3.0, (size, h, w)).astype(np.float32)
  depth[:, :, 0] = 0.0
  normal = rng.normal(size=(size, h, w, 3)).astype(np.float32)
  normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
  normal[:, -1] = 0.0
  targets = {"seg": seg, "depth": depth, "normal": normal,
             "cls": rng.integers(0, 3, size).astype(np.int32)}
  names = [t.name for t in tasks]
  return {"inputs": rng.random((size, *shape), np.float32),
          "targets": {n: targets[n] for n in names},
          "mask": {n: np.ones(size, bool) for n in names}}


def train_steps(model, engine, aggregator=None, *, steps=1, tasks=TASKS, lr=0.1):
  """``steps`` SGD steps of ``model`` on :func:`batch` with equal weighting and
  ``aggregator`` (a name or None) on ``engine``; the step is compiled once at
  XLA level 0. Returns ``(states, history)``: the states after 0..steps steps
  and each step's metrics (every loss finite, no step skipped)."""
  import jax
  import ml_collections

  from mtl_jax import aggregation, models, weighting
  from mtl_jax.train import engines, optimizer, state as state_lib
  from mtl_jax.train.step import make_train_step
  from tests.models.arch_checks import compiled

  p = models.partition(model)
  agg = aggregator and aggregation.get(aggregator)
  method = engines.resolve(weighting.get("equal"), agg, engine,
                           has_representation=hasattr(model, "encode"))
  tx = optimizer.build(ml_collections.ConfigDict(dict(name="sgd", learning_rate=lr)), 10)
  states = [jax.jit(lambda: state_lib.init_state(p, tx, method, seed=0))()]
  fn = make_train_step(p.graphdef, tasks, method, tx)
  step = compiled(fn, states[0], batch(0, tasks=tasks))
  history = []
  for i in range(steps):
    state, metrics = step(states[-1], batch(i, tasks=tasks))
    assert np.all(np.isfinite(metrics["losses"])) and not bool(metrics["skipped"])
    states.append(state)
    history.append(metrics)
  return states, history
