"""Partial sharing: task_conv and task_encoders groups, shapes, gradient flow."""

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

CNN = dict(kind="cnn", channels=(4,), features=6, batch_norm=True)
MLP = dict(kind="mlp", hidden=(8, 6))


def _config(arch, **extra):
  trunk = CNN if arch == "task_conv" else MLP
  return ml_collections.ConfigDict(dict(arch=arch, trunk=trunk, head=dict(hidden=()),
                                        **extra))


@functools.cache
def _model(arch):
  extra = dict(task_kernel_size=1) if arch == "task_conv" else dict(embedding_dim=5)
  return models.build(h.TASKS, (8, 8, 1), **_config(arch, **extra))


@functools.cache
def _jacobian(arch):
  """Per-task loss gradients ``{group: leaves [task, ...]}`` (cls = 0, reg = 1)."""
  p = models.partition(_model(arch))
  forward = make_forward(p.graphdef, h.TASKS)
  return jax.jit(jax.jacrev(lambda params: forward(params, p.rest, h.batch(0))[0]))(
      models.params_of(p))


def _nonzero(tree, row):
  return [bool(np.any(np.asarray(g[row]))) for g in jax.tree.leaves(tree)]


@pytest.mark.parametrize("arch", ["task_conv", "task_encoders"])
def test_partition_is_exhaustive_and_disjoint(arch):
  model = _model(arch)
  p = arch_checks.assert_partition_exhaustive(model)
  assert p.cross == {} and set(p.tasks) == {"cls", "reg"}
  assert not hasattr(model, "encode")
  shapes = jax.eval_shape(lambda s, x: nnx.merge(p.graphdef, s)(x), nnx.state(model),
                          jnp.zeros((3, 8, 8, 1)))
  assert shapes["cls"].shape == (3, 3) and shapes["reg"].shape == (3, 2)


def test_task_conv_groups_and_shapes():
  p = models.partition(_model("task_conv"))
  # Shared: conv encoder (+ its batch norm) and the dense decoding layer.
  assert set(p.shared) == {"convs", "norms", "dense"}
  assert p.shared["dense"]["kernel"].shape == (4 * 4 * 4, 6)
  for name, width in (("cls", 3), ("reg", 2)):
    assert set(p.tasks[name]) == {"conv", "head"}
    assert p.tasks[name]["conv"]["kernel"].shape == (1, 1, 4, 4)  # task_kernel_size=1
    assert p.tasks[name]["head"]["out"]["kernel"].shape == (6, width)


def test_task_encoders_groups_and_shapes():
  p = models.partition(_model("task_encoders"))
  # Shared: only the embedding layer, encoder width 6 -> embedding_dim 5.
  assert set(p.shared) == {"kernel", "bias"} and p.shared["kernel"].shape == (6, 5)
  for name, width in (("cls", 3), ("reg", 2)):
    assert set(p.tasks[name]) == {"encoder", "head"}
    assert p.tasks[name]["encoder"]["layers"][0]["kernel"].shape == (64, 8)
    assert p.tasks[name]["head"]["out"]["kernel"].shape == (5, width)


@pytest.mark.parametrize("arch", ["task_conv", "task_encoders"])
def test_task_layers_get_only_their_task_gradient_shared_get_both(arch):
  jac = _jacobian(arch)
  assert all(_nonzero(jac["shared"], 0)) and all(_nonzero(jac["shared"], 1))
  for k, name in enumerate(("cls", "reg")):
    assert all(_nonzero(jac["tasks"][name], k))
    assert not any(_nonzero(jac["tasks"][name], 1 - k))


@pytest.mark.parametrize("arch,extra,match", [
    ("task_conv", dict(trunk=MLP), r"task_conv needs trunk.kind='cnn', got 'mlp'"),
    ("task_conv", dict(trunk=dict(CNN, channels=())), r"at least one conv block"),
    ("task_conv", dict(task_kernel_size=0), r"task_kernel_size .* got 0"),
    ("task_encoders", dict(embedding_dim=2.5), r"embedding_dim .* got 2.5"),
])
def test_bad_config_raises(arch, extra, match):
  config = _config(arch)
  config.update(extra)
  with pytest.raises(ValueError, match=match):
    models.build(h.TASKS, (8, 8, 1), **config)


@pytest.mark.parametrize("arch,agg,engine", [
    ("task_conv", None, "auto"), ("task_conv", "mgda", "jacobian"),
    ("task_encoders", None, "auto"), ("task_encoders", "mgda", "jacobian")])
def test_trains_two_steps(arch, agg, engine):
  model = _model(arch)
  _, states, history = arch_checks.train_two_steps(model, agg, engine)
  arch_checks.assert_moved(states[0].params, states[-1].params, ("shared", "tasks"))
  if agg:
    np.testing.assert_allclose(np.sum(history[-1]["agg_weights"]), 1.0, rtol=1e-5)


@pytest.mark.parametrize("arch", ["task_conv", "task_encoders"])
def test_representation_engine_is_refused(arch):
  arch_checks.assert_representation_refused(_model(arch), weighting.get("equal"),
                                            aggregation.get("mgda"))
