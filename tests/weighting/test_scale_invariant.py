"""Tests of the scale-invariant (sum of log losses) weighting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mtl_jax.weighting as weighting


def test_hand_computed():
  method = weighting.get("scale_invariant")
  weights, _ = method.update(jnp.array([0.5, 4.0, 0.1]), method.init(3))
  np.testing.assert_allclose(weights, [2.0, 0.25, 10.0], rtol=1e-6)


def test_gradient_equals_gradient_of_sum_of_logs():
  losses = jnp.array([0.37, 2.9, 11.0])
  method = weighting.get("scale_invariant")
  weights, _ = method.update(losses, method.init(3))
  np.testing.assert_allclose(
      weights, jax.grad(lambda l: jnp.sum(jnp.log(l)))(losses), rtol=1e-6)


def test_rescaling_a_loss_leaves_its_weighted_gradient_unchanged():
  # If L_0 -> c L_0 (so grad L_0 -> c grad L_0), w_0 grad L_0 is unchanged.
  method = weighting.get("scale_invariant")
  w1, _ = method.update(jnp.array([0.5, 2.0]), method.init(2))
  w2, _ = method.update(jnp.array([0.5 * 1000, 2.0]), method.init(2))
  np.testing.assert_allclose(w2[0] * 1000, w1[0], rtol=1e-6)
  np.testing.assert_allclose(w2[1], w1[1], rtol=1e-6)


def test_zero_loss_is_finite_and_bad_eps_raises():
  method = weighting.get("scale_invariant")
  weights, _ = method.update(jnp.array([0.0, 1.0]), method.init(2))
  assert np.all(np.isfinite(weights))
  with pytest.raises(ValueError, match="'eps'"):
    weighting.get("scale_invariant", eps=-1.0)
