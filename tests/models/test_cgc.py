"""CGC: a task never sees another task's experts; shared experts reach all."""

import jax
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from mtl_jax import aggregation, models
from mtl_jax.train import engines, state as state_lib
from mtl_jax.train.step import make_train_step
from tests.train import helpers as h

SHAPE = (8, 8, 1)


def _config(**overrides):
  c = dict(arch="cgc", experts=dict(num_shared=2, num_task=1, hidden=(6,)),
           head=dict(hidden=()))
  c.update(overrides)
  return ml_collections.ConfigDict(c)


def _leaf_paths(tree, prefix=()):
  return {prefix + tuple(str(getattr(k, "key", k)) for k in path)
          for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_partition_and_representation_engine_refused():
  model = models.build(_config(), h.TASKS, SHAPE)
  p = models.partition(model)
  groups = [_leaf_paths(getattr(p, g), (g,)) for g in ("shared", "tasks", "cross")]
  assert sum(map(len, groups)) == len(set().union(*groups))
  assert set().union(*groups) == _leaf_paths(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  shared, cls = p.shared["levels"][0], p.tasks["cls"]["levels"][0]
  assert set(shared) == {"experts"}                       # no shared gate in CGC
  assert shared["experts"]["kernels"][0].shape == (2, 64, 6)
  assert cls["experts"]["kernels"][0].shape == (1, 64, 6)
  assert cls["gate"]["logits"]["kernel"].shape == (64, 1 + 2)  # own + shared
  with pytest.raises(ValueError, match="single shared representation"):
    engines.resolve(h.EQUAL, h.MEAN, "representation",
                    has_representation=hasattr(model, "encode"))


def test_tasks_see_own_and_shared_experts_only():
  p = models.partition(models.build(_config(), h.TASKS, SHAPE))
  forward = jax.jit(lambda prm, x: models.merge(p.graphdef, prm, p.rest)(x))
  params = models.params_of(p)
  x = np.random.default_rng(0).random((4, *SHAPE), np.float32)
  base = forward(params, x)

  def perturbed(*path):
    new = jax.tree.map(lambda a: a, params)
    node = new
    for key in path[:-1]:
      node = node[key]
    node[path[-1]] = jax.tree.map(lambda a: a + 1.0, node[path[-1]])
    return forward(new, x)

  other = perturbed("tasks", "reg", "levels", 0, "experts")
  np.testing.assert_array_equal(other["cls"], base["cls"])
  assert not np.allclose(other["reg"], base["reg"])
  shared = perturbed("shared", "levels", 0, "experts")
  assert not np.allclose(shared["cls"], base["cls"])
  assert not np.allclose(shared["reg"], base["reg"])


def _compiled(fn, *args):
  """``jit(fn)`` compiled at XLA optimisation level 0: these tests check values,
  not speed, and this halves the compile time."""
  return jax.jit(fn).lower(*args).compile({"xla_backend_optimization_level": 0})


@pytest.mark.parametrize("aggregator", [None, "mgda"])
def test_trains_two_steps(aggregator):
  p = models.partition(models.build(_config(), h.TASKS, SHAPE))
  agg = aggregation.get(aggregator) if aggregator else None
  method = engines.resolve(h.EQUAL, agg, "auto", has_representation=False)
  tx = optax.sgd(1e-2)
  state = state_lib.create(models.params_of(p), p.rest, tx, method, 2, 0)
  step = _compiled(make_train_step(p.graphdef, h.TASKS, method, tx), state,
                   h.batch(0))
  start = state.params
  for i in range(2):
    state, metrics = step(state, h.batch(i))
    assert np.all(np.isfinite(metrics["losses"])) and not metrics["skipped"]
  moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), start, state.params)
  assert all(any(jax.tree.leaves(moved[g])) for g in ("shared", "tasks"))


@pytest.mark.parametrize("field", ["num_shared", "num_task"])
def test_bad_expert_count_raises(field):
  experts = dict(num_shared=2, num_task=1, hidden=(6,))
  experts[field] = 0
  with pytest.raises(ValueError, match=f"model.experts.{field}.*0"):
    models.build(_config(experts=experts), h.TASKS, SHAPE)
