"""Hierarchical sharing: heads at different trunk depths; gradients stop there."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from mtl_jax import aggregation, models, weighting

from mtl_jax.train.step import make_forward
from tests.models import arch_checks
from tests.train import helpers as h

TRUNKS = {"mlp": dict(kind="mlp", hidden=(8, 7, 6)),
          "cnn": dict(kind="cnn", channels=(4, 5), features=6, batch_norm=True)}


def _config(trunk="mlp", task_depth=None):
  return ml_collections.ConfigDict(dict(
      arch="hierarchical", trunk=TRUNKS[trunk], head=dict(hidden=()),
      task_depth=task_depth if task_depth is not None else {"cls": 1}))


@functools.cache
def _model(trunk="mlp"):
  """``cls`` at depth 1, ``reg`` at the default (last) depth; built once."""
  return models.build(h.TASKS, (8, 8, 1), **_config(trunk))


@pytest.mark.parametrize("trunk", ["mlp", "cnn"])
def test_partition_groups_and_head_widths(trunk):
  model = _model(trunk)
  p = arch_checks.assert_partition_exhaustive(model)
  assert p.cross == {} and set(p.tasks) == {"cls", "reg"}
  # cls reads stage 1 (MLP: 8 features; CNN: 4 channels, pooled), reg the last (6).
  assert p.tasks["cls"]["out"]["kernel"].shape == ((8, 3) if trunk == "mlp" else (4, 3))
  assert p.tasks["reg"]["out"]["kernel"].shape == (6, 2)
  assert not hasattr(model, "encode")
  out = jax.eval_shape(lambda s, x: nnx.merge(p.graphdef, s)(x), nnx.state(model),
                       jnp.zeros((5, 8, 8, 1)))
  assert out["cls"].shape == (5, 3) and out["reg"].shape == (5, 2)


def test_mlp_stages_match_a_numpy_forward_pass():
  trunk_module = _model("mlp").shared
  x = np.asarray(h.batch(0)["inputs"]).reshape(8, -1)
  z = x
  for i, layer in enumerate(trunk_module.layers):
    stage_out = trunk_module.stage(i, jnp.asarray(z), train=False)
    z = np.maximum(z @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...]), 0.0)
    np.testing.assert_allclose(stage_out, z, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(trunk_module(jnp.asarray(x)), z, rtol=1e-5, atol=1e-5)


def test_task_at_depth_one_has_no_gradient_above_layer_one():
  p = models.partition(_model("mlp"))
  forward = make_forward(p.graphdef, h.TASKS)
  jac = jax.jit(jax.jacrev(lambda params: forward(params, p.rest, h.batch(0))[0]))(
      models.params_of(p))["shared"]  # leaves [task, ...]; task 0 = cls (depth 1)
  first, above = jac["layers"][0], [jac["layers"][1], jac["layers"][2]]
  assert all(np.any(np.asarray(g[0])) for g in jax.tree.leaves(first))
  assert not any(np.any(np.asarray(g[0])) for g in jax.tree.leaves(above))
  # reg (last depth) reaches every layer.
  assert all(np.any(np.asarray(g[1])) for g in jax.tree.leaves(jac))


def test_default_depth_is_the_last_layer():
  model = models.build(h.TASKS, (8, 8, 1), **_config(task_depth={}))
  assert model.depths == (3, 3)


@pytest.mark.parametrize("depth,match", [
    ({"seg": 1}, r"unknown task\(s\) \['seg'\]"),
    ({"cls": 0}, r"task_depth\['cls'\] must be an integer in \[1, 3\].*got 0"),
    ({"cls": 4}, r"task_depth\['cls'\].*got 4"),
    ({"cls": 1.5}, r"task_depth\['cls'\].*got 1.5"),
])
def test_bad_task_depth_raises(depth, match):
  with pytest.raises(ValueError, match=match):
    models.build(h.TASKS, (8, 8, 1), **_config(task_depth=depth))


@pytest.mark.parametrize("agg,engine", [(None, "auto"), ("mgda", "jacobian")])
def test_trains_two_steps(agg, engine):
  model = _model("mlp")
  _, states, history = arch_checks.train_two_steps(model, agg, engine)
  arch_checks.assert_moved(states[0].params, states[-1].params, ("shared", "tasks"))
  if agg:  # MGDA's weights lie on the simplex
    np.testing.assert_allclose(np.sum(history[-1]["agg_weights"]), 1.0, rtol=1e-5)


def test_representation_engine_is_refused():
  arch_checks.assert_representation_refused(_model("mlp"), weighting.get("equal"),
                                            aggregation.get("mgda"))
