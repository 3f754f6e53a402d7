"""Tests of uncertainty weighting."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import mtl_jax.weighting as weighting
from weighting_testlib import NumpyAdam, scan_updates


def test_hand_computed_three_updates():
  lr = 0.1
  losses_seq = np.array([[2.0, 0.5], [1.5, 0.6], [1.0, 0.4]])
  method = weighting.get("uncertainty", learning_rate=lr)
  state = method.init(2)
  adam, s = NumpyAdam(lr), np.zeros(2)
  for losses in losses_seq:
    weights, state = method.update(jnp.asarray(losses, jnp.float32), state)
    np.testing.assert_allclose(weights, np.exp(-s), rtol=1e-5)
    s = adam.step(s, 1.0 - np.exp(-s) * losses)  # d/ds [e^-s L + s]
    np.testing.assert_allclose(state.log_vars, s, rtol=1e-5, atol=1e-6)


def test_log_variances_converge_to_log_losses():
  losses = np.array([2.0, 0.5, 10.0])
  weights, states = scan_updates(
      weighting.get("uncertainty", learning_rate=0.05),
      np.tile(losses, (1500, 1)))
  np.testing.assert_allclose(states.log_vars[-1], np.log(losses), atol=1e-3)
  np.testing.assert_allclose(weights[-1], 1 / losses, rtol=1e-3)


def test_custom_optimizer_and_zero_loss_stays_bounded():
  method = weighting.get("uncertainty", optimizer=optax.sgd(1.0),
                         max_abs_log_var=5.0)
  weights, states = scan_updates(method, np.zeros((20, 2)))
  # SGD with lr 1 and gradient 1 moves s by -1 per step, clipped at -5.
  np.testing.assert_allclose(states.log_vars[:7, 0],
                             [-1, -2, -3, -4, -5, -5, -5])
  assert np.all(np.isfinite(weights))
  assert float(weights.max()) <= np.exp(5) * 1.001


@pytest.mark.parametrize("kwargs, name", [
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"max_abs_log_var": -1.0}, "max_abs_log_var"),
    ({"init_log_var": float("inf")}, "init_log_var"),
])
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f"'{name}'"):
    weighting.get("uncertainty", **kwargs)


def test_regression_form_is_kendalls_likelihood_over_steps():
  # Kendall et al.: L / (2 sigma^2) + log sigma = (exp(-s) L + s) / 2, so
  # w = exp(-s) / 2 and d/ds = (1 - exp(-s) L) / 2; checked with SGD (which,
  # unlike Adam, sees the factor 1/2) and with Adam.
  losses_seq = np.array([[2.0, 0.5], [1.5, 0.6], [1.0, 0.4], [0.8, 0.7]])
  for opt, numpy_step in ((optax.sgd(0.3), lambda s, g: s - 0.3 * g),
                          (None, NumpyAdam(0.1).step)):
    kwargs = {"optimizer": opt} if opt is not None else {"learning_rate": 0.1}
    method = weighting.get("uncertainty", form="regression", **kwargs)
    state = method.init(2)
    s = np.zeros(2)
    for losses in losses_seq:
      weights, state = method.update(jnp.asarray(losses, jnp.float32), state)
      np.testing.assert_allclose(weights, 0.5 * np.exp(-s), rtol=1e-5)
      s = numpy_step(s, 0.5 * (1.0 - np.exp(-s) * losses))
      np.testing.assert_allclose(state.log_vars, s, rtol=1e-5, atol=1e-6)


def test_form_is_validated():
  with pytest.raises(ValueError, match="form"):
    weighting.get("uncertainty", form="classification")
