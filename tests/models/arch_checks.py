"""Checks shared by the architecture tests (tests/models/test_<arch>.py).

Partition exhaustiveness, the two-step training smoke test and the refusal of
the representation engine look the same for every architecture; the
architecture-specific assertions stay in each test file.
"""

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

from mtl_jax import aggregation, models, weighting
from mtl_jax.train import engines, optimizer, state as state_lib
from mtl_jax.train.step import make_train_step
from tests.train import helpers as h

GROUPS = ("shared", "tasks", "cross")


def leaf_paths(tree, prefix=()):
  """The set of leaf paths of ``tree`` (keys as strings), each led by ``prefix``."""
  return {prefix + tuple(str(getattr(k, "key", k)) for k in path)
          for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}


def assert_partition_exhaustive(model):
  """Every parameter of ``model`` is in exactly one partition group; returns the partition."""
  p = models.partition(model)
  groups = [leaf_paths(getattr(p, g), (g,)) for g in GROUPS]
  claimed = set().union(*groups)
  assert sum(map(len, groups)) == len(claimed), "groups overlap"
  assert claimed == leaf_paths(nnx.to_pure_dict(nnx.state(model, nnx.Param))), (
      "some parameter is in no group")
  return p


def assert_representation_refused(model, weighting_method=h.EQUAL, aggregator=h.MEAN):
  """A model without ``encode`` cannot use the representation engine."""
  with pytest.raises(ValueError, match="single shared representation"):
    engines.resolve(weighting_method, aggregator, "representation",
                    has_representation=hasattr(model, "encode"))


def compiled(fn, *args):
  """``jit(fn)`` compiled at XLA optimisation level 0: these tests check values,
  not speed, and this halves the compile time."""
  return jax.jit(fn).lower(*args).compile({"xla_backend_optimization_level": 0})


def train_two_steps(model, aggregator=None, engine="auto", *, tx=None, fast_compile=False,
                    weighting_method=None, penalty=None, steps=2):
  """``steps`` SGD steps on h.batch(0), h.batch(1), ... with equal weighting and
  ``aggregator`` (a name, or None). Each step must be finite and not skipped.

  ``tx`` defaults to ``optimizer.build`` SGD at lr 0.1. With ``fast_compile``
  the step is compiled once at XLA level 0; otherwise it is ``jax.jit``-ed and
  must compile once. Returns ``(method, states, history)``: the method, the
  states after 0..steps steps and the metrics of each step.
  """
  p = models.partition(model)
  agg = aggregator and aggregation.get(aggregator)
  method = engines.resolve(weighting_method or weighting.get("equal"), agg, engine,
                           has_representation=hasattr(model, "encode"))
  if tx is None:
    tx = optimizer.build(ml_collections.ConfigDict(dict(name="sgd", learning_rate=0.1)), 10)
  states = [state_lib.init_state(p, tx, method, seed=0)]
  fn = make_train_step(p.graphdef, h.TASKS, method, tx, penalty=penalty)
  step = compiled(fn, states[0], h.batch(0)) if fast_compile else jax.jit(fn)
  history = []
  for i in range(steps):
    state, metrics = step(states[-1], h.batch(i))
    assert np.all(np.isfinite(metrics["losses"])) and not bool(metrics["skipped"])
    states.append(state)
    history.append(metrics)
  assert int(states[-1].step) == steps
  if not fast_compile:
    assert step._cache_size() == 1
  return method, states, history


def assert_moved(start_params, end_params, groups, every=True):
  """In each group of ``groups``, every leaf (or, ``every=False``, some leaf) changed."""
  for group in groups:
    moved = jax.tree.map(lambda a, b: bool(np.any(a != b)),
                         start_params[group], end_params[group])
    assert (all if every else any)(jax.tree.leaves(moved)), group
