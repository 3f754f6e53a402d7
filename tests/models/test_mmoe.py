"""MMoE: hand-computed forward, gates on the simplex, one expert = shared bottom."""

import jax
import jax.numpy as jnp
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
  c = dict(arch="mmoe", experts=dict(num=3, hidden=(6,)), head=dict(hidden=(4,)))
  c.update(overrides)
  return ml_collections.ConfigDict(c)


def _apply(model, x, params=None):
  """Jitted forward of ``model`` with (optionally replaced) pure params."""
  p = models.partition(model)
  fn = jax.jit(lambda prm: models.merge(p.graphdef, prm, p.rest)(x))
  return fn(params if params is not None else models.params_of(p))


def _leaf_paths(tree, prefix=()):
  return {prefix + tuple(str(getattr(k, "key", k)) for k in path)
          for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_partition_experts_shared_gates_and_towers_per_task():
  model = models.build(_config(), h.TASKS, SHAPE)
  p = models.partition(model)
  groups = [_leaf_paths(getattr(p, g), (g,)) for g in ("shared", "tasks", "cross")]
  claimed = set().union(*groups)
  assert sum(map(len, groups)) == len(claimed)
  assert claimed == _leaf_paths(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  assert p.shared["kernels"][0].shape == (3, 64, 6)   # [experts, in, out]
  assert set(p.tasks) == {"cls", "reg"} and p.cross == {}
  assert set(p.tasks["cls"]) == {"gate", "head"}
  assert not hasattr(model, "encode")


def test_forward_matches_hand_computation():
  """y_k = tower_k(sum_e softmax(W_k x + b_k)_e relu(K_e x + c_e))."""
  model = models.build(_config(head=dict(hidden=())), h.TASKS, SHAPE)
  p = models.partition(model)
  params = jax.tree.map(np.asarray, models.params_of(p))
  x = np.random.default_rng(0).random((4, *SHAPE), np.float32)
  flat = x.reshape(4, -1).astype(np.float64)
  k, c = params["shared"]["kernels"][0], params["shared"]["biases"][0]
  experts = np.maximum(np.einsum("bi,eio->ebo", flat, k) + c[:, None], 0)
  out = _apply(model, x)
  for name in ("cls", "reg"):
    t = params["tasks"][name]
    logits = flat @ t["gate"]["logits"]["kernel"] + t["gate"]["logits"]["bias"]
    g = np.exp(logits - logits.max(1, keepdims=True))
    g /= g.sum(1, keepdims=True)
    mixed = np.einsum("be,ebo->bo", g, experts)
    expected = mixed @ t["head"]["out"]["kernel"] + t["head"]["out"]["bias"]
    np.testing.assert_allclose(out[name], expected, rtol=1e-4, atol=1e-5)


def test_softmax_gate_is_on_the_simplex():
  model = models.build(_config(), h.TASKS, SHAPE)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(5, 64)) * 10, jnp.float32)
  g = np.asarray(jax.jit(lambda m, v: m(v))(model.tasks["reg"].gate, x))
  assert g.shape == (5, 3) and np.all(g >= 0)
  np.testing.assert_allclose(g.sum(1), 1.0, rtol=1e-6)


def test_one_expert_equals_shared_bottom():
  """With one expert the gate is 1: MMoE is the shared-bottom model."""
  moe = models.build(_config(experts=dict(num=1, hidden=(6,))), h.TASKS, SHAPE)
  bottom = models.build(ml_collections.ConfigDict(dict(
      arch="hard_sharing", trunk=dict(kind="mlp", hidden=(6,)),
      head=dict(hidden=(4,)))), h.TASKS, SHAPE, seed=7)
  moe_params = models.params_of(models.partition(moe))
  params = {"shared": {"layers": {0: {"kernel": moe_params["shared"]["kernels"][0][0],
                                      "bias": moe_params["shared"]["biases"][0][0]}}},
            "tasks": {n: t["head"] for n, t in moe_params["tasks"].items()},
            "cross": {}}
  x = np.random.default_rng(2).random((4, *SHAPE), np.float32)
  want, got = _apply(bottom, x, params), _apply(moe, x)
  for name in want:
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


def _compiled(fn, *args):
  """``jit(fn)`` compiled at XLA optimisation level 0: these tests check values,
  not speed, and this halves the compile time."""
  return jax.jit(fn).lower(*args).compile({"xla_backend_optimization_level": 0})


@pytest.mark.parametrize("aggregator", [None, "mgda"])
def test_trains_two_steps(aggregator):
  model = models.build(_config(), h.TASKS, SHAPE)
  p = models.partition(model)
  agg = aggregation.get(aggregator) if aggregator else None
  method = engines.resolve(h.EQUAL, agg, "auto", has_representation=False)
  assert method.engine == ("jacobian" if aggregator else "weighted")
  tx = optax.sgd(1e-2)
  state = state_lib.create(models.params_of(p), p.rest, tx, method, 2, 0)
  step = _compiled(make_train_step(p.graphdef, h.TASKS, method, tx), state,
                   h.batch(0))
  start = state.params
  for i in range(2):
    state, metrics = step(state, h.batch(i))
    assert np.all(np.isfinite(metrics["losses"])) and not metrics["skipped"]
  for group in ("shared", "tasks"):
    moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), start[group],
                         state.params[group])
    assert any(jax.tree.leaves(moved)), group


def test_representation_engine_is_refused():
  model = models.build(_config(), h.TASKS, SHAPE)
  with pytest.raises(ValueError, match="single shared representation"):
    engines.resolve(h.EQUAL, h.MEAN, "representation",
                    has_representation=hasattr(model, "encode"))


@pytest.mark.parametrize("overrides, match", [
    (dict(experts=dict(num=0, hidden=(6,))), "model.experts.num.*0"),
    (dict(experts=dict(num=2, hidden=())), r"model.experts.hidden.*\(\)"),
    (dict(gate="topk"), "model.gate.*'topk'"),
])
def test_bad_config_raises(overrides, match):
  with pytest.raises(ValueError, match=match):
    models.build(_config(**overrides), h.TASKS, SHAPE)
