"""Tests of smooth Tchebycheff scalarisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mtl_jax.weighting as weighting


def _softmax(x):
  e = np.exp(x - x.max())
  return e / e.sum()


def _weights(losses, **kwargs):
  method = weighting.get("stch", **kwargs)
  weights, _ = method.update(jnp.asarray(losses, jnp.float32),
                             method.init(len(losses)))
  return np.asarray(weights)


def test_hand_computed_log_variant():
  mu, lam, z = 0.5, np.array([1.0, 2.0, 0.5]), np.array([0.1, -0.2, 0.0])
  losses = np.array([1.0, 0.5, 3.0])
  p = _softmax(lam * (np.log(losses) - z) / mu)
  expected = 3 * p * lam / losses
  np.testing.assert_allclose(
      _weights(losses, mu=mu, preference=lam, ideal_point=z), expected,
      rtol=1e-5)


def test_hand_computed_linear_variant():
  mu, lam, z = 2.0, np.array([1.0, 0.5]), np.array([0.5, 0.0])
  losses = np.array([1.5, 4.0])
  p = _softmax(lam * (losses - z) / mu)
  np.testing.assert_allclose(
      _weights(losses, mu=mu, preference=lam, ideal_point=z, log_losses=False),
      2 * p * lam, rtol=1e-5)


def test_weights_are_the_gradient_of_the_smooth_tchebycheff_objective():
  mu, lam, z = 0.3, jnp.array([0.7, 1.2, 1.0]), jnp.array([-0.1, 0.0, 0.2])
  losses = jnp.array([0.8, 0.35, 2.2])

  def objective(l):
    return 3 * mu * jax.nn.logsumexp(lam * (jnp.log(l) - z) / mu)

  np.testing.assert_allclose(
      _weights(losses, mu=mu, preference=lam, ideal_point=z),
      jax.grad(objective)(losses), rtol=1e-5)


def test_small_mu_is_tchebycheff_large_mu_is_linear():
  losses = np.array([1.0, 0.5, 3.0])
  # mu -> 0: all the weight on the worst (largest log loss) task.
  np.testing.assert_allclose(_weights(losses, mu=1e-3),
                             [0.0, 0.0, 3.0 / 3.0], atol=1e-6)
  # mu -> inf: p -> 1/K, the sum of log losses (w = 1 / L).
  np.testing.assert_allclose(_weights(losses, mu=1e6), 1 / losses, rtol=1e-4)


def test_warmup_estimates_the_nadir():
  method = weighting.get("stch", warmup_steps=2, mu=1.0)
  state = method.init(2)
  seq = np.array([[2.0, 0.5], [1.0, 0.3], [1.2, 0.2]], np.float32)
  for losses in seq[:2]:
    weights, state = method.update(jnp.asarray(losses), state)
    np.testing.assert_allclose(weights, 1 / losses, rtol=1e-5)  # sum of logs
  weights, state = method.update(jnp.asarray(seq[2]), state)
  nadir = seq[:2].mean(axis=0)
  p = _softmax(np.log(seq[2] / nadir))
  np.testing.assert_allclose(weights, 2 * p / seq[2], rtol=1e-5)


@pytest.mark.parametrize("kwargs, name", [
    ({"mu": 0.0}, "mu"),
    ({"preference": [1.0, 0.0]}, "preference"),
    ({"ideal_point": [0.0, float("inf")]}, "ideal_point"),
    ({"warmup_steps": -1}, "warmup_steps"),
    ({"warmup_steps": 1.5}, "warmup_steps"),
])
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f"'{name}'"):
    weighting.get("stch", **kwargs)


def test_preference_of_wrong_length_raises_at_init():
  method = weighting.get("stch", preference=[1.0, 2.0])
  with pytest.raises(ValueError, match=r"'preference' has 2 entries.*3 tasks"):
    method.init(3)
