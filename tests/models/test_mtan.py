"""MTAN: masks of 1 give the shared features; masks of 1/2 halve them."""

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
TRUNKS = {"cnn": dict(kind="cnn", channels=(2, 3), features=4),
          "mlp": dict(kind="mlp", hidden=(5, 4))}


def _config(kind="cnn", **overrides):
  c = dict(arch="mtan", trunk=TRUNKS[kind], head=dict(hidden=()))
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
  assert set(p.shared) == {"first", "second", "final"}
  att = p.tasks["cls"]
  assert set(att) == {"g", "h", "f", "head"}
  assert att["g"][1]["kernel"].shape == (1, 1, 2 * 3, 3)  # [u_2 ; f(ahat_1)] -> c_2
  assert att["f"][0]["kernel"].shape == (3, 3, 2, 3)      # block 1 -> block 2 width
  with pytest.raises(ValueError, match="single shared representation"):
    engines.resolve(h.EQUAL, h.MEAN, "representation",
                    has_representation=hasattr(model, "encode"))


def _with_masks(params, logit):
  """Masks ``sigmoid(logit)`` everywhere: zero kernels, bias ``logit`` in ``h``."""
  params = jax.tree.map(lambda a: a, params)
  for att in params["tasks"].values():
    for layer in att["h"].values():
      layer["kernel"] = np.zeros_like(layer["kernel"])
      layer["bias"] = np.full_like(layer["bias"], logit)
  return params


@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_unit_masks_give_the_shared_features(kind):
  p = models.partition(models.build(_config(kind), h.TASKS, SHAPE))
  features = jax.jit(lambda prm, x: models.merge(p.graphdef, prm, p.rest).features(x))
  x = np.random.default_rng(0).random((3, *SHAPE), np.float32)
  shared, per_task = features(models.params_of(p), x)
  assert not np.allclose(per_task["cls"], shared)           # learnt masks differ
  shared_1, ones = features(_with_masks(models.params_of(p), 40.0), x)  # sigmoid = 1
  for name in ("cls", "reg"):
    np.testing.assert_array_equal(ones[name], shared_1)
  if kind == "mlp":  # Task features are ahat = mask * p_J: masks of 1/2 halve them.
    _, halves = features(_with_masks(models.params_of(p), 0.0), x)
    np.testing.assert_allclose(halves["reg"], 0.5 * np.asarray(shared), rtol=1e-6)


def _compiled(fn, *args):
  """``jit(fn)`` compiled at XLA optimisation level 0: these tests check values,
  not speed, and this halves the compile time."""
  return jax.jit(fn).lower(*args).compile({"xla_backend_optimization_level": 0})


@pytest.mark.parametrize("aggregator, kind", [(None, "cnn"), ("mgda", "mlp")])
def test_trains_two_steps(aggregator, kind):
  # One block keeps compilation short; the mask tests cover the two-block path.
  trunk = {"cnn": dict(kind="cnn", channels=(2,), features=4),
           "mlp": dict(kind="mlp", hidden=(5,))}[kind]
  p = models.partition(models.build(_config(kind, trunk=trunk), h.TASKS, SHAPE))
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


@pytest.mark.parametrize("trunk, match", [
    (dict(kind="rnn"), "model.trunk.kind.*'rnn'"),
    (dict(kind="cnn", channels=(2, 2, 2, 2)), "too small"),
    (dict(kind="mlp", hidden=(4, 0)), "model.trunk.hidden.*0"),
])
def test_bad_config_raises(trunk, match):
  with pytest.raises(ValueError, match=match):
    models.build(ml_collections.ConfigDict(dict(arch="mtan", trunk=trunk)), h.TASKS,
                 SHAPE)
