"""Tests of random loss weighting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mtl_jax.weighting as weighting


@pytest.mark.parametrize("weights_sum,total", [("num_tasks", 3), ("one", 1)])
def test_normal_hand_computed_from_the_same_draw(weights_sum, total):
  key = jax.random.key(7)
  method = weighting.get("rlw", weights_sum=weights_sum)
  weights, _ = method.update(jnp.ones(3), method.init(3), key=key)
  z = np.asarray(jax.random.normal(key, (3,)), np.float64)
  expected = total * np.exp(z) / np.exp(z).sum()  # The paper: total = 1.
  np.testing.assert_allclose(weights, expected, rtol=1e-5)


def _samples(method, num_tasks=4, num_samples=500):
  keys = jax.random.split(jax.random.key(0), num_samples)
  sample = lambda k: method.update(jnp.ones(num_tasks), (), key=k)[0]
  return keys, np.asarray(jax.jit(jax.vmap(sample))(keys))


def test_normal_weights_are_positive_sum_to_k_and_vary_with_the_key():
  method = weighting.get("rlw")
  keys, samples = _samples(method)
  np.testing.assert_allclose(samples.sum(axis=1), 4.0, rtol=1e-5)
  assert np.all(samples > 0)
  # Each task's weight varies from step to step, with mean 1.
  assert np.all(samples.std(axis=0) > 0.3)
  np.testing.assert_allclose(samples.mean(axis=0), 1.0, atol=0.1)
  same, _ = method.update(jnp.ones(4), (), key=keys[3])
  np.testing.assert_allclose(same, samples[3], rtol=1e-6)


def test_dirichlet_weights_follow_the_dirichlet_law():
  # K p with p ~ Dir(a 1_K): mean 1 and, with a0 = K a,
  # std K sqrt(a (a0 - a) / (a0^2 (a0 + 1))).
  a, k = 2.0, 4
  _, samples = _samples(weighting.get("rlw", distribution="dirichlet",
                                      concentration=a), num_tasks=k)
  np.testing.assert_allclose(samples.sum(axis=1), k, rtol=1e-5)
  assert np.all(samples >= 0)
  a0 = k * a
  std = k * np.sqrt(a * (a0 - a) / (a0 ** 2 * (a0 + 1)))  # 0.577
  np.testing.assert_allclose(samples.mean(axis=0), 1.0, atol=0.1)
  np.testing.assert_allclose(samples.std(axis=0), std, rtol=0.15)


def test_missing_key_and_bad_hyperparameters_raise():
  method = weighting.get("rlw")
  with pytest.raises(ValueError, match="key"):
    method.update(jnp.ones(2), method.init(2))
  with pytest.raises(ValueError, match="'distribution'"):
    weighting.get("rlw", distribution="uniform")
  with pytest.raises(ValueError, match="'concentration'"):
    weighting.get("rlw", distribution="dirichlet", concentration=0.0)
  with pytest.raises(ValueError, match="'weights_sum'"):
    weighting.get("rlw", weights_sum=1)
