"""Tests of equal weighting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mtl_jax.weighting as weighting


def test_all_weights_are_one():
  method = weighting.get("equal")
  state = method.init(4)
  weights, state = method.update(jnp.array([0.0, 3.0, 1e15, 0.2]), state)
  np.testing.assert_array_equal(weights, np.ones(4))


def test_weighted_sum_is_the_plain_sum():
  method = weighting.get("equal")
  losses = jnp.array([0.3, 1.7, 2.5])
  weights, _ = method.update(losses, method.init(3))
  total = lambda l: jnp.sum(jax.lax.stop_gradient(weights) * l)
  assert float(total(losses)) == pytest.approx(0.3 + 1.7 + 2.5)
  np.testing.assert_allclose(jax.grad(total)(losses),
                             jax.grad(jnp.sum)(losses))
