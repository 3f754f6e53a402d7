"""CGC: a task never sees another task's experts; shared experts reach all."""

import jax
import ml_collections
import numpy as np
import optax
import pytest

from mtl_jax import models
from tests.models import arch_checks
from tests.train import helpers as h

SHAPE = (8, 8, 1)


def _config(**overrides):
  c = dict(arch="cgc", experts=dict(num_shared=2, num_task=1, hidden=(6,)),
           head=dict(hidden=()))
  c.update(overrides)
  return ml_collections.ConfigDict(c)


def test_partition_and_representation_engine_refused():
  model = models.build(h.TASKS, SHAPE, **_config())
  p = arch_checks.assert_partition_exhaustive(model)
  shared, cls = p.shared["levels"][0], p.tasks["cls"]["levels"][0]
  assert set(shared) == {"experts"}                       # no shared gate in CGC
  assert shared["experts"]["kernels"][0].shape == (2, 64, 6)
  assert cls["experts"]["kernels"][0].shape == (1, 64, 6)
  assert cls["gate"]["logits"]["kernel"].shape == (64, 1 + 2)  # own + shared
  arch_checks.assert_representation_refused(model)


def test_tasks_see_own_and_shared_experts_only():
  p = models.partition(models.build(h.TASKS, SHAPE, **_config()))
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


@pytest.mark.parametrize("aggregator", [None, "mgda"])
def test_trains_two_steps(aggregator):
  model = models.build(h.TASKS, SHAPE, **_config())
  _, states, _ = arch_checks.train_two_steps(model, aggregator, tx=optax.sgd(1e-2),
                                             fast_compile=True, weighting_method=h.EQUAL)
  arch_checks.assert_moved(states[0].params, states[-1].params, ("shared", "tasks"),
                           every=False)


@pytest.mark.parametrize("field", ["num_shared", "num_task"])
def test_bad_expert_count_raises(field):
  experts = dict(num_shared=2, num_task=1, hidden=(6,))
  experts[field] = 0
  with pytest.raises(ValueError, match=f"experts.{field}.*0"):
    models.build(h.TASKS, SHAPE, **_config(experts=experts))
