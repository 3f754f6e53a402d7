"""mean and sum: equal weights."""

import jax.numpy as jnp
import numpy as np

from mtl_jax import aggregation
from mtl_jax.aggregation.base import gramian


def test_mean_and_sum_hand_computed():
  grads = {"w": jnp.array([[1.0, 2.0], [3.0, -4.0], [-1.0, 5.0]]),
           "b": jnp.array([[1.0], [1.0], [4.0]])}
  mean, sum_ = aggregation.get("mean"), aggregation.get("sum")
  d, _ = mean.update(grads, mean.init(3))
  np.testing.assert_allclose(d["w"], [1.0, 1.0], rtol=1e-6)
  np.testing.assert_allclose(d["b"], [2.0], rtol=1e-6)
  d, _ = sum_.update(grads, sum_.init(3))
  np.testing.assert_allclose(d["w"], [3.0, 3.0], rtol=1e-6)
  np.testing.assert_allclose(d["b"], [6.0], rtol=1e-6)


def test_weights_are_constant():
  g = gramian(jnp.eye(4))
  w, _ = aggregation.get("mean").weights(g, None, step=0, unknown=1)
  np.testing.assert_allclose(w, np.full(4, 0.25))
  w, _ = aggregation.get("sum").weights(g, None)
  np.testing.assert_allclose(w, np.ones(4))
