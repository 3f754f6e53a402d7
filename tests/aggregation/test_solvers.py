"""The shared solvers: simplex projection and min-norm point."""

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.aggregation import _solvers, gramians

RNG = np.random.default_rng(7)
_PROJECT = jax.jit(jax.vmap(_solvers.project_simplex))


def test_project_simplex_is_the_euclidean_projection():
  v = RNG.normal(size=(64, 4)) * RNG.uniform(0.1, 5.0, size=(64, 1))
  w = np.asarray(_PROJECT(jnp.asarray(v, jnp.float32)), np.float64)
  assert np.all(w >= 0)
  np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
  # No simplex point is closer to v (sampled check).
  points = RNG.dirichlet(np.ones(4), size=2000)
  for vb, wb in zip(v, w):
    best = np.min(np.linalg.norm(points - vb, axis=1))
    assert np.linalg.norm(wb - vb) <= best + 1e-5
  # A point on the simplex is its own projection.
  p = points[:64]
  np.testing.assert_allclose(
      _PROJECT(jnp.asarray(p, jnp.float32)),
      p, atol=1e-6)


def test_segment_min_norm_hand_computed():
  # a = (1, 0), b = (0, 2): gamma = (4 - 0) / (1 + 4) = 0.8; a = b: keep a;
  # a.b >= a.a: the end point a is the closest (gamma = 1).
  gamma = _solvers.segment_min_norm(jnp.array([1.0, 1.0, 1.0]),
                                    jnp.array([0.0, 1.0, 2.0]),
                                    jnp.array([4.0, 1.0, 5.0]))
  np.testing.assert_allclose(gamma, [0.8, 1.0, 1.0], atol=1e-7)


def test_safe_helpers():
  np.testing.assert_array_equal(
      gramians.safe_inverse(jnp.array([0.0, 2.0, -1.0])), [0.0, 0.5, 0.0])
  gram = jnp.array([[4.0, 0.0], [0.0, 0.0]])
  cos, inv = gramians.cosines(gram), gramians.inverse_norms(gram)
  np.testing.assert_array_equal(cos, [[1.0, 0.0], [0.0, 0.0]])
  np.testing.assert_array_equal(inv, [0.5, 0.0])
