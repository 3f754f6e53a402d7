"""Gramian helpers: the same numbers from numpy (host) and JAX (jit) inputs."""

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax import aggregation, weighting
from mtl_jax.aggregation import base, gramians

RNG = np.random.default_rng(3)


def test_norms_and_cosines_from_the_gramian():
  grads = RNG.normal(size=(3, 5))
  grads[2] = 0.0  # a zero gradient: cosine 0, never NaN
  g = grads @ grads.T
  norms = np.linalg.norm(grads, axis=1)
  np.testing.assert_allclose(gramians.task_norms(g), norms)
  expected = np.zeros((3, 3))
  expected[:2, :2] = g[:2, :2] / np.outer(norms[:2], norms[:2])
  for gram, tol in ((g, 1e-12), (jnp.asarray(g, jnp.float32), 1e-5)):
    cos = gramians.cosines(gram)
    assert isinstance(cos, type(gram))  # numpy stays numpy (float64 on the host)
    np.testing.assert_allclose(np.asarray(cos), expected, atol=tol)
  jitted = jax.jit(gramians.cosines)(jnp.asarray(g, jnp.float32))
  np.testing.assert_allclose(np.asarray(jitted), expected, atol=1e-5)
  np.testing.assert_allclose(gramians.inverse_norms(g, 1e-3), [1 / norms[0], 1 / norms[1], 0])


def test_gramian_of_a_pytree_and_the_reexports():
  grads = {"a": jnp.asarray(RNG.normal(size=(2, 3))), "b": jnp.asarray(RNG.normal(size=(2, 4, 2)))}
  flat = np.concatenate([np.asarray(grads["a"]), np.asarray(grads["b"]).reshape(2, -1)], 1)
  np.testing.assert_allclose(gramians.gramian(grads), flat @ flat.T, rtol=1e-5)
  assert aggregation.gramian is base.gramian is gramians.gramian
  assert base.normalize_gramian is gramians.normalize_gramian


def test_one_empty_state():
  assert weighting.EmptyState is aggregation.EmptyState
