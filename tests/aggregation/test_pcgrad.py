"""PCGrad: projecting conflicting gradients, tracked on the Gramian."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation
from mtl_jax.aggregation.pcgrad import projection_coefficients, task_orders

RNG = np.random.default_rng(1)


@functools.lru_cache(maxsize=None)
def _weights_fn(reduction="sum"):
  agg = aggregation.get("pcgrad", reduction=reduction)
  return jax.jit(lambda g, key: agg.weights(g, agg.init(g.shape[0]),
                                            key=key)[0])


@functools.lru_cache(maxsize=None)
def _coefficients_fn():
  return jax.jit(jax.vmap(projection_coefficients))


def _reference(jac, orders):
  """PCGrad on explicit vectors (numpy, float64), the paper's Algorithm 1."""
  projected = []
  for i in range(len(jac)):
    g = jac[i].copy()
    for j in orders[i]:
      if j == i:
        continue
      dot = g @ jac[j]
      if dot < 0:
        g = g - dot / (jac[j] @ jac[j]) * jac[j]
    projected.append(g)
  return np.array(projected)


def test_hand_computed_conflicting_pair():
  # g1 = (1, 0), g2 = (-1, 1) conflict (g1.g2 = -1):
  # g1' = g1 + (1/2) g2 = (0.5, 0.5); g2' = g2 + g1 = (0, 1); d = (0.5, 1.5).
  jac = np.array([[1.0, 0.0], [-1.0, 1.0]])
  gram = jnp.asarray(jac @ jac.T, jnp.float32)
  w = np.asarray(_weights_fn()(gram, jax.random.key(0)))
  np.testing.assert_allclose(w, [2.0, 1.5], atol=1e-6)
  np.testing.assert_allclose(w @ jac, [0.5, 1.5], atol=1e-6)
  w = np.asarray(_weights_fn("mean")(gram, jax.random.key(0)))
  np.testing.assert_allclose(w @ jac, [0.25, 0.75], atol=1e-6)


def test_no_conflict_is_the_plain_sum():
  jac = np.array([[1.0, 0.5], [0.2, 1.0]])
  w = _weights_fn()(jnp.asarray(jac @ jac.T, jnp.float32), jax.random.key(3))
  np.testing.assert_allclose(w, [1.0, 1.0], atol=1e-6)


def test_two_tasks_leave_no_conflict():
  jac = RNG.normal(size=(32, 2, 5))
  gram = jnp.asarray(np.einsum("bip,bjp->bij", jac, jac), jnp.float32)
  orders = jnp.broadcast_to(jnp.arange(2), (32, 2, 2))
  coef = np.asarray(_coefficients_fn()(gram, orders), np.float64)
  projected = np.einsum("bik,bkp->bip", coef, jac)
  scale = np.einsum("bip,bip->b", jac, jac)[:, None]
  # Each projected gradient is not against the other task's gradient, and
  # the two projected gradients do not conflict with each other.
  def dot(a, b):
    return np.einsum("bp,bp->b", a, b)
  tol = -1e-5 * scale[:, 0]
  assert np.all(dot(projected[:, 0], jac[:, 1]) >= tol)
  assert np.all(dot(projected[:, 1], jac[:, 0]) >= tol)
  assert np.all(dot(projected[:, 0], projected[:, 1]) >= tol)


def test_coefficients_match_explicit_projections():
  # T = 3 with random orders: Gramian tracking == projecting vectors.
  jac = RNG.normal(size=(32, 3, 4))
  jac[::2] -= 1.5 * jac[::2, :1]  # Plenty of conflicts.
  orders = np.array([[RNG.permutation(3) for _ in range(3)] for _ in range(32)])
  gram = jnp.asarray(np.einsum("bip,bjp->bij", jac, jac), jnp.float32)
  coef = np.asarray(_coefficients_fn()(gram, jnp.asarray(orders)), np.float64)
  for b in range(32):
    expected = _reference(jac[b], orders[b])
    np.testing.assert_allclose(coef[b] @ jac[b], expected, atol=1e-4)


def test_orders_depend_on_key_and_are_permutations():
  fn = jax.jit(lambda key: task_orders(5, key))
  orders = np.asarray(fn(jax.random.key(0)))
  assert all(sorted(row) == list(range(5)) for row in orders)
  assert len({tuple(row) for row in orders}) > 1
  other = np.asarray(fn(jax.random.key(1)))
  assert not np.array_equal(orders, other)
  np.testing.assert_array_equal(task_orders(3, None),
                                np.tile(np.arange(3), (3, 1)))


def test_two_tasks_permutation_equivariant():
  jac = np.array([[1.0, 0.0, 2.0], [-2.0, 1.0, -1.0]])
  fn = _weights_fn()
  w = fn(jnp.asarray(jac @ jac.T, jnp.float32), jax.random.key(0))
  w_p = fn(jnp.asarray(jac[::-1] @ jac[::-1].T, jnp.float32), jax.random.key(9))
  np.testing.assert_allclose(w_p, np.asarray(w)[::-1], atol=1e-6)


def test_errors():
  with pytest.raises(ValueError, match="reduction"):
    aggregation.get("pcgrad", reduction="max")
