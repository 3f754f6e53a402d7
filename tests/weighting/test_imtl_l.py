"""Tests of IMTL-L (loss balancing of impartial multi-task learning)."""

import jax.numpy as jnp
import numpy as np
import pytest

import mtl_jax.weighting as weighting
from weighting_testlib import NumpyAdam, scan_updates


def test_hand_computed_three_updates():
  lr = 0.2
  losses_seq = np.array([[2.0, 0.5], [1.5, 0.6], [1.0, 0.4]])
  method = weighting.get("imtl_l", learning_rate=lr)
  state = method.init(2)
  adam, s = NumpyAdam(lr), np.zeros(2)
  for losses in losses_seq:
    weights, state = method.update(jnp.asarray(losses, jnp.float32), state)
    np.testing.assert_allclose(weights, np.exp(s), rtol=1e-5)
    s = adam.step(s, np.exp(s) * losses - 1.0)  # d/ds [e^s L - s]
    np.testing.assert_allclose(state.scales, s, rtol=1e-5, atol=1e-6)


def test_scaled_losses_become_equal():
  losses = np.array([2.0, 0.5, 10.0])
  weights, states = scan_updates(weighting.get("imtl_l", learning_rate=0.05),
                                 np.tile(losses, (1500, 1)))
  np.testing.assert_allclose(states.scales[-1], -np.log(losses), atol=1e-3)
  np.testing.assert_allclose(weights[-1] * losses, np.ones(3), rtol=1e-3)


@pytest.mark.parametrize("kwargs, name", [
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"max_abs_scale": 0.0}, "max_abs_scale"),
])
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f"'{name}'"):
    weighting.get("imtl_l", **kwargs)
