"""DSelect-k: smooth-step values, simplex, at most k experts once saturated."""

import jax
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from mtl_jax import models
from mtl_jax.models.dselect_k import DSelectKGate, code_matrices, smooth_step
from tests.models import arch_checks
from tests.train import helpers as h

SHAPE = (8, 8, 1)


def _config(**overrides):
  c = dict(arch="dselect_k", experts=dict(num=5, hidden=(6,)), k=2,
           head=dict(hidden=()))
  c.update(overrides)
  return ml_collections.ConfigDict(c)


def test_smooth_step_hand_values():
  t = np.array([-2.0, -0.5, -0.25, 0.0, 0.25, 0.5, 3.0], np.float32)
  # -2 t^3 + 1.5 t + 0.5 in the middle (gamma = 1); 0 and 1 outside.
  np.testing.assert_allclose(smooth_step(t, 1.0),
                             [0, 0, 0.15625, 0.5, 0.84375, 1, 1], atol=1e-7)
  np.testing.assert_allclose(smooth_step(2 * t, 2.0), smooth_step(t, 1.0), atol=1e-7)


def test_codes_alias_unreachable_codes_to_experts():
  bits, to_expert = code_matrices(5)
  assert bits.shape == (8, 3)
  np.testing.assert_array_equal(bits[6], [1, 1, 0])              # 6 = 0b110
  np.testing.assert_array_equal(to_expert.argmax(1), [0, 1, 2, 3, 4, 0, 1, 2])


def _gate():
  """5 experts (3 binary digits, codes 5..7 aliased), k = 2 selectors."""
  return DSelectKGate(4, 5, k=2, gamma=1.0, rngs=nnx.Rngs(0))


def _with_params(gate, z_bias, w_bias):
  """Input-independent logits set by hand (zero kernels)."""
  gate.z.kernel[...] = np.zeros_like(gate.z.kernel[...])
  gate.z.bias[...] = np.asarray(z_bias, np.float32)
  gate.w.kernel[...] = np.zeros_like(gate.w.kernel[...])
  gate.w.bias[...] = np.asarray(w_bias, np.float32)
  return gate


X = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32) * 3
_gate_and_selectors = jax.jit(lambda m, x: (m(x), m.selectors(x)))  # One compile.


def test_saturated_gate_selects_at_most_k_experts():
  # Selector 1: code 0b011 -> expert 3; selector 2: code 0b110 = 6 -> expert 1.
  # Combiner softmax(log 3, 0) = (0.75, 0.25).
  gate = _with_params(_gate(), [-1, 1, 1, 1, 1, -1], [np.log(3.0), 0.0])
  g = np.asarray(_gate_and_selectors(gate, X)[0])
  np.testing.assert_allclose(g, np.tile([0, 0.25, 0, 0.75, 0], (6, 1)), atol=1e-6)
  assert np.all((g > 0).sum(1) <= 2)


def test_partially_saturated_selector_hand_computed():
  # Selector 1, z = (-1, 1, 0.25): bits 0 and 1 saturated, bit 2 at
  # S(0.25) = 0.84375, so it splits between codes 0b011 (expert 3) and 0b010
  # (expert 2). Selector 2, z = (1, 1, 1): code 7, aliased to expert 7 - 5 = 2.
  gate = _with_params(_gate(), [-1, 1, 0.25, 1, 1, 1], [0.0, 0.0])
  g, r = map(np.asarray, _gate_and_selectors(gate, X))
  np.testing.assert_allclose(r[:, 0], np.tile([0, 0, 0.15625, 0.84375, 0], (6, 1)),
                             atol=1e-6)
  np.testing.assert_allclose(r[:, 1], np.tile([0, 0, 1, 0, 0], (6, 1)), atol=1e-6)
  np.testing.assert_allclose(g, np.tile([0, 0, 0.578125, 0.421875, 0], (6, 1)),
                             atol=1e-6)


def test_random_gate_is_on_the_simplex():
  gate = _gate()
  g, r = _gate_and_selectors(gate, X)
  assert g.shape == (6, 5) and np.all(np.asarray(g) >= 0)
  np.testing.assert_allclose(np.sum(g, 1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.sum(r, -1), 1.0, rtol=1e-5)


def test_partition_and_representation_engine_refused():
  model = models.build(h.TASKS, SHAPE, **_config())
  p = arch_checks.assert_partition_exhaustive(model)
  assert set(p.tasks["cls"]["gate"]) == {"z", "w"}
  assert p.tasks["cls"]["gate"]["z"]["kernel"].shape == (64, 2 * 3)  # k * ceil(log2 5)
  arch_checks.assert_representation_refused(model)


@pytest.mark.parametrize("aggregator", [None, "mgda"])
def test_trains_two_steps(aggregator):
  model = models.build(h.TASKS, SHAPE, **_config())
  _, states, _ = arch_checks.train_two_steps(model, aggregator, tx=optax.sgd(1e-2),
                                             fast_compile=True, weighting_method=h.EQUAL)
  arch_checks.assert_moved(states[0].params, states[-1].params, ("shared", "tasks"),
                           every=False)


def test_task_conditioned_gate_ignores_the_input():
  """gate_conditioning='task': logits are parameters (z_logits [k, m],
  w_logits [k]), the same selection for every example."""
  model = models.build(h.TASKS, SHAPE, **_config(gate_conditioning="task"))
  p = arch_checks.assert_partition_exhaustive(model)
  gate = p.tasks["cls"]["gate"]
  assert set(gate) == {"z_logits", "w_logits"}
  assert gate["z_logits"].shape == (2, 3) and gate["w_logits"].shape == (2,)
  assert np.all(np.abs(gate["z_logits"]) <= 0.01)  # U(-gamma/100, gamma/100)
  g = DSelectKGate(4, 5, k=2, conditioning="task", rngs=nnx.Rngs(0))
  g.z_logits[...] = np.array([[-1, 1, 1], [1, 1, -1]], np.float32)  # codes 3 and 6
  g.w_logits[...] = np.array([np.log(3.0), 0.0], np.float32)
  weights = np.asarray(_gate_and_selectors(g, X)[0])
  np.testing.assert_allclose(weights, np.tile([0, 0.25, 0, 0.75, 0], (6, 1)), atol=1e-6)


@pytest.mark.parametrize("overrides, match", [
    (dict(k=0), "k.*0"),
    (dict(gamma=-1.0), "gamma.*-1.0"),
    (dict(gate="softmax"), "gate.*'softmax'"),
    (dict(gate_conditioning="batch"), "gate_conditioning.*'batch'"),
])
def test_bad_config_raises(overrides, match):
  with pytest.raises(ValueError, match=match):
    models.build(h.TASKS, SHAPE, **_config(**overrides))
