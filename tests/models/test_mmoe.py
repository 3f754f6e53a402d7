"""MMoE: hand-computed forward, gates on the simplex, one expert = shared bottom."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from mtl_jax import models
from tests.models import arch_checks
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


def test_partition_experts_shared_gates_and_towers_per_task():
  model = models.build(h.TASKS, SHAPE, **_config())
  p = arch_checks.assert_partition_exhaustive(model)
  assert p.shared["kernels"][0].shape == (3, 64, 6)   # [experts, in, out]
  assert set(p.tasks) == {"cls", "reg"} and p.cross == {}
  assert set(p.tasks["cls"]) == {"gate", "head"}
  assert not hasattr(model, "encode")


def test_forward_matches_hand_computation():
  """y_k = tower_k(sum_e softmax(W_k x + b_k)_e relu(K_e x + c_e))."""
  model = models.build(h.TASKS, SHAPE, **_config(head=dict(hidden=())))
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
  model = models.build(h.TASKS, SHAPE, **_config())
  x = jnp.asarray(np.random.default_rng(1).normal(size=(5, 64)) * 10, jnp.float32)
  g = np.asarray(jax.jit(lambda m, v: m(v))(model.tasks["reg"].gate, x))
  assert g.shape == (5, 3) and np.all(g >= 0)
  np.testing.assert_allclose(g.sum(1), 1.0, rtol=1e-6)


def test_one_expert_equals_shared_bottom():
  """With one expert the gate is 1: MMoE is the shared-bottom model."""
  moe = models.build(h.TASKS, SHAPE, **_config(experts=dict(num=1, hidden=(6,))))
  bottom = models.build(h.TASKS, SHAPE, seed=7, **ml_collections.ConfigDict(dict(
      arch="hard_sharing", trunk=dict(kind="mlp", hidden=(6,)),
      head=dict(hidden=(4,)))))
  moe_params = models.params_of(models.partition(moe))
  params = {"shared": {"layers": {0: {"kernel": moe_params["shared"]["kernels"][0][0],
                                      "bias": moe_params["shared"]["biases"][0][0]}}},
            "tasks": {n: t["head"] for n, t in moe_params["tasks"].items()},
            "cross": {}}
  x = np.random.default_rng(2).random((4, *SHAPE), np.float32)
  want, got = _apply(bottom, x, params), _apply(moe, x)
  for name in want:
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("aggregator", [None, "mgda"])
def test_trains_two_steps(aggregator):
  model = models.build(h.TASKS, SHAPE, **_config())
  method, states, _ = arch_checks.train_two_steps(
      model, aggregator, tx=optax.sgd(1e-2), fast_compile=True, weighting_method=h.EQUAL)
  assert method.engine == ("jacobian" if aggregator else "weighted")
  arch_checks.assert_moved(states[0].params, states[-1].params, ("shared", "tasks"),
                           every=False)


def test_representation_engine_is_refused():
  model = models.build(h.TASKS, SHAPE, **_config())
  arch_checks.assert_representation_refused(model)


@pytest.mark.parametrize("overrides, match", [
    (dict(experts=dict(num=0, hidden=(6,))), "experts.num.*0"),
    (dict(experts=dict(num=2, hidden=())), r"experts.hidden.*\(\)"),
    (dict(gate="topk"), "gate.*'topk'"),
])
def test_bad_config_raises(overrides, match):
  with pytest.raises(ValueError, match=match):
    models.build(h.TASKS, SHAPE, **_config(**overrides))
