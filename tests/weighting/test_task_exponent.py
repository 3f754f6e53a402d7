"""Tests of the task-exponent adjustment."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mtl_jax.weighting as weighting
from weighting_testlib import scan_updates


def _grad_weights(p, losses):
  """Gradient of prod_t L_t^{p_t}, in float64 numpy."""
  return p * np.exp(np.sum(p * np.log(losses)) - np.log(losses))


def test_starts_as_gls():
  losses = jnp.array([0.3, 2.0, 5.0])
  te = weighting.get("task_exponent")
  gls = weighting.get("gls")
  weights, state = te.update(losses, te.init(3))
  np.testing.assert_allclose(state.exponents, 1 / 3, rtol=1e-6)
  np.testing.assert_allclose(weights, gls.update(losses, gls.init(3))[0],
                             rtol=1e-5)


def test_hand_computed_two_tasks():
  eta, theta = 0.2, 0.05
  l0, l1 = np.array([1.0, 4.0]), np.array([0.9, 1.0])
  method = weighting.get("task_exponent", eta=eta, theta=theta)
  _, state = method.update(jnp.asarray(l0, jnp.float32), method.init(2))
  weights, state = method.update(jnp.asarray(l1, jnp.float32), state)
  rho = l1 / l0  # [0.9, 0.25]: task 0 lags
  lag = np.log(rho) - np.log(rho[::-1])
  p = 0.5 + eta * lag * (0.0 + 0.5)  # equal exponents: gap 0, step eta d / K
  np.testing.assert_allclose(state.exponents, p, rtol=1e-5)
  np.testing.assert_allclose(weights, _grad_weights(p, l1), rtol=1e-5)


def test_hand_computed_three_tasks_with_gap_and_shift():
  eta, theta = 0.1, 0.0
  l0 = np.array([1.0, 1.0, 1.0])
  l1 = np.array([1.0, 0.5, 0.8])
  l2 = np.array([0.9, 0.3, 0.8])
  method = weighting.get("task_exponent", eta=eta, theta=theta)
  state = method.init(3)
  p = np.full(3, 1 / 3)
  for k, losses in enumerate([l0, l1, l2]):
    weights, state = method.update(jnp.asarray(losses, jnp.float32), state)
    rho = losses / l0
    others = np.array([np.delete(rho, t).mean() for t in range(3)])
    lag = np.log(rho) - np.log(others)
    gap = np.abs(p - np.array([np.delete(p, t).mean() for t in range(3)]))
    moved = p + eta * lag * (gap + 1 / 3)
    p = moved - (moved.sum() - 1) / 3  # no floor binds: a common shift
    assert np.all(p > theta)
    np.testing.assert_allclose(state.exponents, p, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(weights, _grad_weights(p, losses), rtol=1e-5)


def test_weights_are_the_gradient_of_the_weighted_geometric_mean():
  method = weighting.get("task_exponent", eta=0.5)
  state = method.init(3)
  _, state = method.update(jnp.array([1.0, 1.0, 1.0]), state)
  losses = jnp.array([0.8, 0.2, 0.5])
  weights, state = method.update(losses, state)
  p = state.exponents
  objective = lambda l: jnp.exp(jnp.sum(p * jnp.log(l)))
  np.testing.assert_allclose(weights, jax.grad(objective)(losses), rtol=1e-5)


def test_lagging_task_gains_leading_task_loses_down_to_the_floor():
  theta = 0.1
  n = 300
  losses = np.ones((n, 3))
  losses[1:, 1] = 0.6   # task 1: middling
  losses[1:, 2] = 0.2   # task 2: leads; task 0 never improves (lags)
  weights, states = scan_updates(
      weighting.get("task_exponent", eta=0.05, theta=theta), losses)
  p = np.asarray(states.exponents)
  np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
  assert np.all(p >= theta - 1e-7)                 # the floor always holds
  assert np.all(np.diff(p[:, 0]) >= -1e-7)          # the lagging task gains
  assert p[5, 0] > 1 / 3 and p[5, 2] < 1 / 3
  assert np.all(np.diff(p[:, 2]) <= 1e-7)           # the leading task loses
  np.testing.assert_allclose(p[-1, 2], theta, atol=1e-6)  # ... to the floor
  assert np.all(np.isfinite(weights))


def test_theta_of_one_over_k_freezes_gls():
  losses = np.array([[1.0, 1.0], [1.0, 0.1], [1.0, 0.01]])
  _, states = scan_updates(weighting.get("task_exponent", theta=0.5), losses)
  np.testing.assert_allclose(states.exponents, 0.5, rtol=1e-6)


@pytest.mark.parametrize("kwargs, name", [
    ({"eta": 0.0}, "eta"),
    ({"theta": -0.1}, "theta"),
    ({"theta": 1.5}, "theta"),
    ({"eps": 0.0}, "eps"),
])
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f"'{name}'"):
    weighting.get("task_exponent", **kwargs)


def test_theta_above_one_over_k_raises_at_init():
  method = weighting.get("task_exponent", theta=0.3)
  method.init(3)
  with pytest.raises(ValueError, match=r"'theta' must be <= 1/K = 0.25"):
    method.init(4)
