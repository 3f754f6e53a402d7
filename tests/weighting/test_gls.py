"""Tests of the geometric loss strategy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mtl_jax.weighting as weighting


def test_hand_computed():
  # total = (1 * 4 * 2)^(1/3) = 2, w_t = total / (3 L_t).
  method = weighting.get("gls")
  weights, _ = method.update(jnp.array([1.0, 4.0, 2.0]), method.init(3))
  np.testing.assert_allclose(weights, [2 / 3, 1 / 6, 1 / 3], rtol=1e-6)


def test_gradient_equals_gradient_of_the_geometric_mean():
  losses = jnp.array([0.37, 2.9, 11.0, 0.052])
  method = weighting.get("gls")
  weights, _ = method.update(losses, method.init(4))
  geometric_mean = lambda l: jnp.prod(l) ** (1 / 4)
  np.testing.assert_allclose(weights, jax.grad(geometric_mean)(losses),
                             rtol=1e-5)


def test_weighted_losses_are_equal():
  # w_t L_t = total / K for every task: no task dominates by its scale.
  losses = jnp.array([1e-3, 5.0, 700.0])
  method = weighting.get("gls")
  weights, _ = method.update(losses, method.init(3))
  expected = np.prod([1e-3, 5.0, 700.0]) ** (1 / 3) / 3
  np.testing.assert_allclose(weights * losses, np.full(3, expected), rtol=1e-5)


def test_zero_loss_is_finite():
  method = weighting.get("gls")
  weights, _ = method.update(jnp.array([0.0, 1.0]), method.init(2))
  assert np.all(np.isfinite(weights))


def test_bad_eps_raises():
  with pytest.raises(ValueError, match="'eps'"):
    weighting.get("gls", eps=0.0)
