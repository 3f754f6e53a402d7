"""Tests of FAMO."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mtl_jax.weighting as weighting
from weighting_testlib import NumpyAdam, scan_updates


def _softmax(x):
  e = np.exp(x - x.max())
  return e / e.sum()


@pytest.mark.parametrize("weights_sum,total", [("num_tasks", 3), ("one", 1)])
def test_hand_computed_four_updates(weights_sum, total):
  lr, gamma = 0.025, 1e-3
  losses_seq = np.array([[1.0, 3.0, 0.5], [0.5, 2.9, 0.45], [0.4, 2.5, 0.3],
                         [0.39, 2.0, 0.3]])
  method = weighting.get("famo", learning_rate=lr, weight_decay=gamma,
                         weights_sum=weights_sum)
  state = method.init(3)
  adam, xi = NumpyAdam(lr, weight_decay=gamma), np.zeros(3)
  prev = None
  for losses in losses_seq:
    weights, state = method.update(jnp.asarray(losses, jnp.float32), state)
    if prev is not None:
      delta = np.log(prev) - np.log(losses)
      z = _softmax(xi)
      xi = adam.step(xi, z * (delta - z @ delta))
    np.testing.assert_allclose(state.logits, xi, rtol=1e-4, atol=1e-6)
    c = _softmax(xi) / losses
    # FAMO's weights c z / L sum to 1 (total = 1); the default scales by K.
    np.testing.assert_allclose(weights, total * c / c.sum(), rtol=1e-5)
    prev = losses


def test_weights_are_k_times_normalised_gradient_of_weighted_log_losses():
  losses = jnp.array([0.3, 2.0, 7.0])
  method = weighting.get("famo")
  state = method.init(3)
  state = state._replace(logits=jnp.array([0.5, -0.2, 0.1]))
  weights, state = method.update(losses, state)  # first update: no logit step
  z = jax.nn.softmax(state.logits)
  grad = jax.grad(lambda l: jnp.sum(z * jnp.log(l)))(losses)
  np.testing.assert_allclose(weights, 3 * grad / grad.sum(), rtol=1e-5)


def test_constant_losses_keep_logits_at_zero():
  # No task improves relative to another (all decreases 0): z stays 1/K.
  losses = np.tile([1.0, 40.0, 0.025], (30, 1))
  weights, states = scan_updates(weighting.get("famo"), losses)
  np.testing.assert_array_equal(states.logits, 0.0)
  # With z uniform, w_t L_t = K / sum_j (1 / L_j) for every task.
  expected = 3 / np.sum(1 / np.array([1.0, 40.0, 0.025]))
  np.testing.assert_allclose(weights * losses, expected, rtol=1e-5)


def test_equal_log_decrease_keeps_weights_nearly_uniform():
  # Every loss falls by the same factor. In exact arithmetic the logit
  # gradient is 0; in float32 the log decreases differ by round-off (~1e-7),
  # which Adam's normalisation turns into steps of at most ~lr, so z may only
  # wander by a small random walk (cf. the next test, where it moves by 0.2).
  losses = np.array([1.0, 4.0, 0.25]) * 0.9 ** np.arange(50)[:, None]
  _, states = scan_updates(weighting.get("famo"), losses)
  np.testing.assert_allclose(jax.nn.softmax(states.logits, axis=-1), 1 / 3,
                             atol=0.02)


def test_task_that_improves_more_loses_weight():
  losses = np.ones((50, 2))
  losses[:, 0] = 0.95 ** np.arange(50)  # task 0 improves, task 1 is stuck
  _, states = scan_updates(weighting.get("famo"), losses)
  z = jax.nn.softmax(states.logits, axis=-1)
  assert np.all(np.diff(z[1:, 0]) < 0)
  assert z[-1, 0] < 0.3


@pytest.mark.parametrize("kwargs, name", [
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"weight_decay": -1e-3}, "weight_decay"),
    ({"eps": 0.0}, "eps"),
    ({"weights_sum": "two"}, "weights_sum"),
])
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f"'{name}'"):
    weighting.get("famo", **kwargs)
