"""Trunk building blocks."""

import jax
import numpy as np
from flax import nnx

from mtl_jax.models.trunks import max_pool_2x2


def test_max_pool_2x2_equals_reduce_window_values_and_gradients():
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 7, 9, 4))  # odd sizes: VALID crop
  reference = lambda v: nnx.max_pool(v, (2, 2), strides=(2, 2))
  np.testing.assert_array_equal(max_pool_2x2(x), reference(x))
  cotangent = jax.random.normal(jax.random.PRNGKey(1), reference(x).shape)
  grad = lambda f: jax.vjp(f, x)[1](cotangent)[0]
  np.testing.assert_allclose(grad(max_pool_2x2), grad(reference), rtol=0, atol=0)
