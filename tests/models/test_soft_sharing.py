"""Soft sharing: stacked towers = independent towers, run as one batched op."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from mtl_jax import aggregation, models, penalties, weighting
from mtl_jax.models.heads import Head
from mtl_jax.models.soft_sharing import task_slice
from mtl_jax.models.trunks import build_trunk
from mtl_jax.train.step import make_forward
from tests.models import arch_checks
from tests.train import helpers as h

TRUNKS = {"mlp": dict(kind="mlp", hidden=(8, 6)),
          "cnn": dict(kind="cnn", channels=(4,), features=6, batch_norm=True)}
X = jnp.asarray(h.batch(0)["inputs"])


def _config(trunk="mlp", **extra):
  return ml_collections.ConfigDict(dict(arch="soft_sharing", trunk=TRUNKS[trunk],
                                        head=dict(hidden=()), **extra))


@functools.cache
def _model(trunk="mlp"):
  """Built once per trunk (building is the slow part); tests must not mutate it."""
  return models.build(h.TASKS, (8, 8, 1), **_config(trunk))


@pytest.mark.parametrize("trunk", ["mlp", "cnn"])
def test_partition_groups(trunk):
  model = _model(trunk)
  p = arch_checks.assert_partition_exhaustive(model)
  assert p.shared == {} and set(p.tasks) == {"cls", "reg"}
  assert all(leaf.shape[0] == 2 for leaf in jax.tree.leaves(p.cross["towers"]))
  assert p.tasks["cls"]["out"]["kernel"].shape == (6, 3)
  assert p.tasks["reg"]["out"]["kernel"].shape == (6, 2)
  assert not hasattr(model, "encode")
  if trunk == "cnn":  # batch statistics are stacked too, and are not parameters
    assert p.rest["cross"]["towers"]["norms"][0]["mean"].shape == (2, 4)


def _unstacked_output(model, name, trunk):
  """Task ``name``'s output from a plain trunk + head loaded with its slice."""
  sl = task_slice(model, name)
  k = ("cls", "reg").index(name)
  tower = build_trunk((8, 8, 1), rngs=nnx.Rngs(9), **TRUNKS[trunk])
  head = Head(6, next(t for t in h.TASKS if t.name == name), rngs=nnx.Rngs(9))
  stats = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)).get("cross", {})
  stats = jax.tree.map(lambda a: a[k], stats.get("towers", {}))
  for module, pure in ((tower, sl["tower"]), (tower, stats), (head, sl["head"])):
    state = nnx.state(module, nnx.Param if pure is not stats else nnx.BatchStat)
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(module, state)
  return head(tower(X, train=False))


@pytest.mark.parametrize("trunk", ["mlp", "cnn"])
def test_stacked_towers_equal_independent_towers(trunk):
  """Slice k of the stacked towers (params and batch statistics) is task k's net."""
  model = nnx.clone(_model(trunk))
  model(X, train=True)  # CNN: moves each tower's running statistics differently
  out = model(X, train=False)
  for name in ("cls", "reg"):
    np.testing.assert_allclose(out[name], _unstacked_output(model, name, trunk),
                               rtol=1e-5, atol=1e-6)
  # Towers are initialised independently.
  a, b = (task_slice(model, n)["tower"]["layers" if trunk == "mlp" else "dense"]
          for n in ("cls", "reg"))
  assert not np.allclose(jax.tree.leaves(a)[1], jax.tree.leaves(b)[1])


def test_towers_run_as_one_batched_op():
  """2 towers of 2 dense layers + 2 heads: 4 matmuls, not 6."""
  graphdef, state = nnx.split(_model())
  jaxpr = jax.make_jaxpr(lambda s, x: nnx.merge(graphdef, s)(x))(state, X)
  count = str(jaxpr).count("dot_general")
  assert count == 2 + 2, str(jaxpr)


def test_task_slice_by_params_and_errors():
  model = _model()
  params = models.params_of(models.partition(model))
  by_params, by_model = task_slice(params, "reg"), task_slice(model, "reg")
  jax.tree.map(np.testing.assert_array_equal, by_params, by_model)
  np.testing.assert_array_equal(by_params["tower"]["layers"][0]["kernel"],
                                params["cross"]["towers"]["layers"][0]["kernel"][1])
  with pytest.raises(ValueError, match="Unknown task 'seg'"):
    task_slice(model, "seg")


def test_each_tower_slice_gets_only_its_task_gradient():
  p = models.partition(_model())
  forward = make_forward(p.graphdef, h.TASKS)
  jac = jax.jit(jax.jacrev(lambda params: forward(params, p.rest, h.batch(0))[0]))(
      models.params_of(p))  # rows: d loss_k / d params
  for k in (0, 1):
    for leaf in jax.tree.leaves(jac["cross"]["towers"]):
      assert np.any(np.asarray(leaf[k, k])) and not np.any(np.asarray(leaf[k, 1 - k]))


@functools.cache
def _train(trunk, aggregator=None, engine="auto", penalty=None, steps=2):
  """States after 0..steps SGD steps (lr 0.1) on h.batch(0), h.batch(1), ..."""
  _, states, history = arch_checks.train_two_steps(_model(trunk), aggregator, engine,
                                                   penalty=penalty, steps=steps)
  return states, history


@pytest.mark.parametrize("trunk,agg,engine", [("mlp", None, "auto"),
                                              ("cnn", "mgda", "jacobian")])
def test_trains_two_steps(trunk, agg, engine):
  states, history = _train(trunk, agg, engine)
  assert int(states[-1].step) == 2
  assert not any(bool(m["skipped"]) for m in history)
  assert all(np.all(np.isfinite(m["losses"])) for m in history)
  arch_checks.assert_moved(states[0].params, states[-1].params, ("tasks", "cross"))
  if agg:  # no shared parameters: the Gramian of the shared group is empty (0)
    assert not np.any(np.asarray(history[0]["gramian"]))


def test_representation_engine_is_refused():
  model = _model()
  arch_checks.assert_representation_refused(model, weighting.get("equal"),
                                            aggregation.get("mgda"))


def test_l2_to_mean_penalty_in_the_step_adds_its_exact_gradient():
  """SGD: penalised towers = unpenalised towers - lr * w * 2 (W_k - mean W)."""
  config = _config(penalties={"l2_to_mean": 0.3})
  penalty = penalties.build(config.get("penalties", {}))
  (start, plain, _), _ = _train("mlp")
  (_, penalised), history = _train("mlp", penalty=penalty, steps=1)
  kernels = [np.asarray(k) for k in penalties.stacked_kernels(start.params)]
  np.testing.assert_allclose(
      history[0]["penalty"], 0.3 * sum(np.sum((k - k.mean(0)) ** 2) for k in kernels),
      rtol=1e-5)
  for layer, w in enumerate(kernels):
    expected = plain.params["cross"]["towers"]["layers"][layer]["kernel"] \
        - 0.1 * 0.3 * 2 * (w - w.mean(0))
    np.testing.assert_allclose(
        penalised.params["cross"]["towers"]["layers"][layer]["kernel"], expected,
        rtol=1e-5, atol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, penalised.params["tasks"],
               plain.params["tasks"])
