"""The 2-task toy problem and the Pareto-MTL problem against hand values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.data import pareto_mtl, toy


def test_toy_losses_at_hand_evaluated_points():
  # x2 = 0: both gates are tanh(0) = 0.
  np.testing.assert_allclose(toy.toy_losses(jnp.array([0.0, 0.0])), [0.0, 0.0])
  # (9, -1): c1 = 0, c2 = tanh(0.5); g1 = (4 + 4.9) / 10 - 20, g2 = (256 + 4.9) / 10 - 20.
  c2 = math.tanh(0.5)
  np.testing.assert_allclose(toy.toy_losses(jnp.array([9.0, -1.0])),
                             [c2 * -19.11, c2 * 6.09], rtol=1e-5)
  # (-8.5, 7.5): c1 = tanh(3.75), c2 = 0; f1 = log|0.75 + tanh(7.5)| + 6,
  # f2 = log|5.75 - tanh(7.5) + 2| + 6.
  c1, t = math.tanh(3.75), math.tanh(7.5)
  expected = [c1 * (math.log(0.75 + t) + 6), c1 * (math.log(7.75 - t) + 6)]
  np.testing.assert_allclose(toy.toy_losses(jnp.array([-8.5, 7.5])), expected,
                             rtol=1e-5)
  np.testing.assert_allclose(toy.toy_losses(jnp.array([-8.5, 7.5]), scale_l1=0.1),
                             [0.1 * expected[0], expected[1]], rtol=1e-5)


def test_toy_log_floor_and_gradients():
  # 0.5 (5 - 7) - tanh(-20) = -1 + 1 = 0: f1 hits the 5e-6 floor; c1 = tanh(10).
  loss = toy.toy_losses(jnp.array([-5.0, 20.0]))
  assert float(loss[0]) == pytest.approx(math.tanh(10) * (math.log(5e-6) + 6), rel=1e-4)
  starts = jnp.array(toy.TOY_STARTS + toy.CAGRAD_STARTS)
  jac = jax.jit(jax.vmap(jax.jacrev(toy.toy_losses)))(starts)
  assert jac.shape == (8, 2, 2) and bool(jnp.isfinite(jac).all())


def test_pareto_losses_at_hand_evaluated_points():
  n = 20
  c = 1 / math.sqrt(n)
  np.testing.assert_allclose(pareto_mtl.pareto_losses(jnp.full(n, c)),
                             [0.0, 1 - math.exp(-4)], atol=1e-6)
  np.testing.assert_allclose(pareto_mtl.pareto_losses(jnp.zeros(n)),
                             [1 - math.exp(-1)] * 2, rtol=1e-6)
  x = jnp.zeros(n).at[0].set(1.0)  # sum (x - c)^2 = (1 - c)^2 + 19 c^2
  f1 = 1 - math.exp(-((1 - c) ** 2 + 19 * c * c))
  f2 = 1 - math.exp(-((1 + c) ** 2 + 19 * c * c))
  np.testing.assert_allclose(pareto_mtl.pareto_losses(x), [f1, f2], rtol=1e-6)


def test_pareto_front_is_monotone_and_concave():
  front = np.asarray(pareto_mtl.pareto_front(101))
  assert front.shape == (101, 2)
  assert np.all(np.diff(front[:, 0]) < 0) and np.all(np.diff(front[:, 1]) > 0)
  # Concave: the middle of the front lies beyond the chord of its ends.
  assert front[50].sum() > front[0].sum()
  starts = pareto_mtl.sample_starts(jax.random.key(0), 4)
  assert starts.shape == (4, 20) and float(jnp.abs(starts).max()) <= 0.5
