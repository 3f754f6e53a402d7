"""PLE: progressive extraction through inner shared gates; levels=1 is CGC."""

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
  c = dict(arch="ple", levels=2, experts=dict(num_shared=2, num_task=1, hidden=(6,)),
           head=dict(hidden=()))
  c.update(overrides)
  return ml_collections.ConfigDict(c)


def test_partition_and_representation_engine_refused():
  model = models.build(h.TASKS, SHAPE, **_config())
  p = arch_checks.assert_partition_exhaustive(model)
  inner, last = p.shared["levels"][0], p.shared["levels"][1]
  # The inner shared gate mixes 2 tasks x 1 task expert + 2 shared experts.
  assert inner["gate"]["logits"]["kernel"].shape == (64, 4)
  assert set(last) == {"experts"}
  assert last["experts"]["kernels"][0].shape == (2, 6, 6)    # level 2 reads level 1
  assert set(p.tasks["reg"]["levels"]) == {0, 1}
  arch_checks.assert_representation_refused(model)


def _perturbed(params, path):
  new = jax.tree.map(lambda a: a, params)
  node = new
  for key in path[:-1]:
    node = node[key]
  node[path[-1]] = jax.tree.map(lambda a: a + 1.0, node[path[-1]])
  return new


def test_tasks_interact_through_inner_levels_only():
  p = models.partition(models.build(h.TASKS, SHAPE, **_config()))
  forward = jax.jit(lambda prm, x: models.merge(p.graphdef, prm, p.rest)(x))
  params = models.params_of(p)
  x = np.random.default_rng(0).random((4, *SHAPE), np.float32)
  base = forward(params, x)
  inner = forward(_perturbed(params, ("tasks", "reg", "levels", 0, "experts")), x)
  assert not np.allclose(inner["cls"], base["cls"])     # via the shared gate
  last = forward(_perturbed(params, ("tasks", "reg", "levels", 1, "experts")), x)
  np.testing.assert_array_equal(last["cls"], base["cls"])
  assert not np.allclose(last["reg"], base["reg"])


def test_one_level_is_cgc():
  ple = models.partition(models.build(h.TASKS, SHAPE, **_config(levels=1)))
  cgc = models.partition(models.build(h.TASKS, SHAPE, **_config(arch="cgc")))
  # Same parameters, in the same places, from the same seed.
  jax.tree.map(np.testing.assert_array_equal, models.params_of(ple), models.params_of(cgc))


@pytest.mark.parametrize("aggregator", [None, "mgda"])
def test_trains_two_steps(aggregator):
  model = models.build(h.TASKS, SHAPE, **_config())
  _, states, _ = arch_checks.train_two_steps(model, aggregator, tx=optax.sgd(1e-2),
                                             fast_compile=True, weighting_method=h.EQUAL)
  arch_checks.assert_moved(states[0].params, states[-1].params, ("shared", "tasks"),
                           every=False)


def test_bad_levels_raises():
  with pytest.raises(ValueError, match="levels.*0"):
    models.build(h.TASKS, SHAPE, **_config(levels=0))
