"""GradDrop: per-coordinate sign selection."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation

RNG = np.random.default_rng(3)


def _update_fn(**hparams):
  agg = aggregation.get("graddrop", **hparams)
  return jax.jit(lambda g, key: agg.update(g, agg.init(g.shape[0]), key=key)[0])


def test_hand_computed_pure_signs_and_statistics():
  # Coordinate 0 is all positive (P = 1): keep everything, 1 + 3 = 4.
  # Coordinate 1 is all negative (P = 0): -2 - 1 = -3.
  # Coordinate 2 has g = (1, -3): P = (1 + (-2)/4) / 2 = 1/4: the output is
  # 1 (positive kept) with probability 1/4, else -3.
  grads = jnp.array([[1.0, -2.0, 1.0], [3.0, -1.0, -3.0]])
  fn = _update_fn()
  keys = jax.random.split(jax.random.key(0), 4000)
  out = np.asarray(jax.jit(jax.vmap(fn, in_axes=(None, 0)))(grads, keys))
  np.testing.assert_array_equal(out[:, 0], 4.0)
  np.testing.assert_array_equal(out[:, 1], -3.0)
  assert set(np.unique(out[:, 2])) == {1.0, -3.0}
  assert abs(np.mean(out[:, 2] == 1.0) - 0.25) < 0.03


def test_kept_gradients_agree_in_sign():
  grads = {"a": jnp.asarray(RNG.normal(size=(4, 5, 3)), jnp.float32),
           "b": jnp.asarray(RNG.normal(size=(4, 7)), jnp.float32)}
  agg = aggregation.get("graddrop")
  fn = jax.jit(lambda g, k: agg.update(g, agg.init(4), key=k, step=1))
  d, _ = fn(grads, jax.random.key(1))
  for leaf, out in zip(jax.tree.leaves(grads), jax.tree.leaves(d)):
    leaf = np.asarray(leaf)
    positive = np.where(leaf > 0, leaf, 0).sum(0)
    negative = np.where(leaf < 0, leaf, 0).sum(0)
    # Every coordinate is the sum of the gradients of one sign only.
    chose = np.isclose(out, positive) | np.isclose(out, negative)
    assert chose.all()
    assert np.isclose(out, positive).any() and np.isclose(out, negative).any()
  # The purity and the draw do not depend on the task order.
  perm = np.array([2, 0, 3, 1])
  d_p, _ = fn(jax.tree.map(lambda x: x[perm], grads), jax.random.key(1))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), d_p, d)


def test_leak():
  grads = jnp.asarray(RNG.normal(size=(3, 6)), jnp.float32)
  key = jax.random.key(2)
  np.testing.assert_allclose(_update_fn(leak=1.0)(grads, key), grads.sum(0),
                             atol=1e-6)
  # Leak 1/2: half the sum plus half of the pure GradDrop output, which is
  # the sum of the gradients of one sign per coordinate.
  half = np.asarray(_update_fn(leak=(0.5, 0.5, 0.5))(grads, key))
  g = np.asarray(grads)
  pure = 2 * (half - 0.5 * g.sum(0))
  positive = np.where(g > 0, g, 0).sum(0)
  negative = np.where(g < 0, g, 0).sum(0)
  assert np.all(np.isclose(pure, positive, atol=1e-5)
                | np.isclose(pure, negative, atol=1e-5))


def test_errors():
  with pytest.raises(ValueError, match="leak"):
    aggregation.get("graddrop", leak=1.5)
  with pytest.raises(ValueError, match="leak"):
    aggregation.get("graddrop", leak=(0.1, -0.2))
  with pytest.raises(ValueError, match="leak"):
    aggregation.get("graddrop", leak=(0.1, 0.2)).init(3)
  agg = aggregation.get("graddrop")
  assert agg.weights is None
  with pytest.raises(ValueError, match="key"):
    agg.update(jnp.ones((2, 3)), agg.init(2))
