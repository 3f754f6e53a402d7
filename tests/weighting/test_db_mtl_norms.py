"""Tests of DB-MTL (dual balancing)."""

import jax.numpy as jnp
import numpy as np
import pytest

import mtl_jax.weighting as weighting


def test_hand_computed_three_updates():
  beta, sigma = 0.9, 0.5
  losses_seq = np.array([[1.0, 4.0, 0.5], [0.8, 3.0, 0.5], [0.7, 2.0, 0.4]])
  sq_norms_seq = np.array([[4.0, 1.0, 0.25], [1.0, 1.0, 0.36], [2.0, 0.5, 1.0]])
  method = weighting.get("db_mtl_norms", beta=beta, beta_sigma=sigma)
  state = method.init(3)
  u = np.zeros(3)
  for k, (losses, sq) in enumerate(zip(losses_seq, sq_norms_seq), start=1):
    gramian = jnp.asarray(np.diag(sq), jnp.float32)
    weights, state = method.update(jnp.asarray(losses, jnp.float32), state,
                                   gramian=gramian)
    g = np.sqrt(sq) / losses  # ||grad log L_t||
    beta_k = beta / k ** sigma
    u = beta_k * u + (1 - beta_k) * g
    expected = (u.max() / u) / losses
    np.testing.assert_allclose(weights, expected, rtol=1e-5)


def test_without_ema_all_weighted_gradient_norms_are_the_largest_log_norm():
  losses = np.array([0.2, 3.0, 40.0])
  grads = np.array([[1.0, 0.0], [0.5, 2.0], [30.0, -10.0]])
  gramian = jnp.asarray(grads @ grads.T, jnp.float32)
  method = weighting.get("db_mtl_norms", beta=0.0)
  weights, _ = method.update(jnp.asarray(losses, jnp.float32), method.init(3),
                             gramian=gramian)
  weighted_norms = np.asarray(weights) * np.linalg.norm(grads, axis=1)
  largest = np.max(np.linalg.norm(grads, axis=1) / losses)
  np.testing.assert_allclose(weighted_norms, largest, rtol=1e-5)


def test_invariant_to_the_scale_of_a_task():
  # L_0 -> c L_0 (and its gradient -> c grad): w_0 grad L_0 is unchanged.
  c = 1000.0
  losses = np.array([0.5, 2.0])
  sq = np.array([1.0, 9.0])
  method = weighting.get("db_mtl_norms")
  w1, _ = method.update(jnp.asarray(losses), method.init(2),
                        gramian=jnp.diag(jnp.asarray(sq)))
  w2, _ = method.update(jnp.asarray(losses * [c, 1.0]), method.init(2),
                        gramian=jnp.diag(jnp.asarray(sq * [c * c, 1.0])))
  np.testing.assert_allclose(np.asarray(w2) * [c, 1.0], w1, rtol=1e-5)


@pytest.mark.parametrize("kwargs, name", [
    ({"beta": 1.0}, "beta"),
    ({"beta": -0.1}, "beta"),
    ({"beta_sigma": -1.0}, "beta_sigma"),
])
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f"'{name}'"):
    weighting.get("db_mtl_norms", **kwargs)
