"""Soft sharing: stacked towers = independent towers, run as one batched op."""

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
from mtl_jax.train import engines, optimizer, state as state_lib
from mtl_jax.train.step import make_train_step
from tests.train import helpers as h

MLP = dict(kind="mlp", hidden=(8, 6))
CNN = dict(kind="cnn", channels=(4,), features=6, batch_norm=True)
X = jnp.asarray(h.batch(0)["inputs"])


def _config(trunk=MLP, **extra):
  return ml_collections.ConfigDict(dict(arch="soft_sharing", trunk=trunk,
                                        head=dict(hidden=()), **extra))


def _model(trunk=MLP):
  return models.build(_config(trunk), h.TASKS, (8, 8, 1))


def _paths(tree):
  return {tuple(str(getattr(k, "key", k)) for k in path)
          for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.mark.parametrize("trunk", [MLP, CNN], ids=["mlp", "cnn"])
def test_partition_groups(trunk):
  model = _model(trunk)
  p = models.partition(model)
  groups = [{(g,) + q for q in _paths(t)}
            for g, t in (("shared", p.shared), ("tasks", p.tasks), ("cross", p.cross))]
  assert set().union(*groups) == _paths(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  assert sum(map(len, groups)) == len(set().union(*groups))  # disjoint
  assert p.shared == {} and set(p.tasks) == {"cls", "reg"}
  assert all(leaf.shape[0] == 2 for leaf in jax.tree.leaves(p.cross["towers"]))
  assert p.tasks["cls"]["out"]["kernel"].shape == (6, 3)
  assert p.tasks["reg"]["out"]["kernel"].shape == (6, 2)
  assert not hasattr(model, "encode")
  if trunk is CNN:  # batch statistics are stacked too, and are not parameters
    assert p.rest["cross"]["towers"]["norms"][0]["mean"].shape == (2, 4)


def _unstacked_output(model, name, trunk):
  """Task ``name``'s output from a plain trunk + head loaded with its slice."""
  sl = task_slice(model, name)
  tower = build_trunk(ml_collections.ConfigDict(trunk), (8, 8, 1), rngs=nnx.Rngs(9))
  task = next(t for t in h.TASKS if t.name == name)
  head = Head(6, task, rngs=nnx.Rngs(9))
  for module, params in ((tower, sl["tower"]), (head, sl["head"])):
    state = nnx.state(module, nnx.Param)
    nnx.replace_by_pure_dict(state, params)
    nnx.update(module, state)
  return head(tower(X))


@pytest.mark.parametrize("trunk", [MLP, dict(CNN, batch_norm=False)], ids=["mlp", "cnn"])
def test_stacked_towers_equal_independent_towers(trunk):
  model = _model(trunk)
  out = model(X)
  for name in ("cls", "reg"):
    np.testing.assert_allclose(out[name], _unstacked_output(model, name, trunk),
                               rtol=1e-5, atol=1e-6)
  # Towers are initialised independently.
  a, b = (task_slice(model, n)["tower"]["layers" if trunk is MLP else "dense"]
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
  params, batch = models.params_of(p), h.batch(0)

  def task_loss(params, k):
    from mtl_jax.train.step import make_forward
    return make_forward(p.graphdef, h.TASKS)(params, p.rest, batch)[0][k]

  for k in (0, 1):
    towers = jax.grad(task_loss)(params, k)["cross"]["towers"]
    for leaf in jax.tree.leaves(towers):
      assert np.any(np.asarray(leaf[k])) and not np.any(np.asarray(leaf[1 - k]))


def _train(config, aggregator, engine, penalty=None, steps=2):
  model = models.build(config, h.TASKS, (8, 8, 1))
  p = models.partition(model)
  method = engines.resolve(weighting.get("equal"), aggregator, engine,
                           has_representation=hasattr(model, "encode"))
  tx = optimizer.build(ml_collections.ConfigDict(dict(name="sgd", learning_rate=0.1)), 10)
  state = state_lib.create(models.params_of(p), p.rest, tx, method, 2, 0)
  step = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx, penalty=penalty))
  start, history = state, []
  for i in range(steps):
    state, metrics = step(state, h.batch(i))
    history.append(metrics)
  assert step._cache_size() == 1 and int(state.step) == steps
  assert not any(bool(m["skipped"]) for m in history)
  for group in ("tasks", "cross"):
    moved = jax.tree.map(lambda a, b: bool(np.any(a != b)),
                         start.params[group], state.params[group])
    assert all(jax.tree.leaves(moved)), group
  return start, state, history


@pytest.mark.parametrize("trunk,agg,engine", [(CNN, None, "auto"), (MLP, "mgda", "jacobian")],
                         ids=["equal-cnn", "mgda-jacobian-mlp"])
def test_trains_two_steps(trunk, agg, engine):
  _train(_config(trunk), agg and aggregation.get(agg), engine)


def test_representation_engine_is_refused():
  model = _model()
  with pytest.raises(ValueError, match="single shared representation"):
    engines.resolve(weighting.get("equal"), aggregation.get("mgda"), "representation",
                    has_representation=hasattr(model, "encode"))


def test_l2_to_mean_penalty_in_the_step_adds_its_exact_gradient():
  """SGD: penalised towers = unpenalised towers - lr * w * 2 (W_k - mean W)."""
  config = _config(penalties={"l2_to_mean": 0.3})
  penalty = penalties.build(config.penalties)
  start, plain, _ = _train(config, None, "auto", steps=1)
  _, penalised, history = _train(config, None, "auto", penalty=penalty, steps=1)
  kernels = penalties.stacked_kernels(start.params)
  np.testing.assert_allclose(
      history[0]["penalty"],
      0.3 * sum(np.sum((k - k.mean(0)) ** 2) for k in map(np.asarray, kernels)),
      rtol=1e-5)
  for layer in (0, 1):
    w = np.asarray(start.params["cross"]["towers"]["layers"][layer]["kernel"])
    expected = np.asarray(plain.params["cross"]["towers"]["layers"][layer]["kernel"]) \
        - 0.1 * 0.3 * 2 * (w - w.mean(0))
    np.testing.assert_allclose(
        penalised.params["cross"]["towers"]["layers"][layer]["kernel"], expected,
        rtol=1e-5, atol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, penalised.params["tasks"],
               plain.params["tasks"])
