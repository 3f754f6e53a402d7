"""CAGrad: conflict-averse direction in a ball around the mean gradient."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation

RNG = np.random.default_rng(5)
BATCH = 8


@functools.lru_cache(maxsize=None)
def _weights_fn(**hparams):
  agg = aggregation.get("cagrad", **hparams)
  return jax.jit(jax.vmap(lambda g: agg.weights(g, agg.init(g.shape[0]))[0]))


def _weights(jac, **hparams):
  gram = np.einsum("bip,bjp->bij", jac, jac)
  pad = np.concatenate([gram] + [gram[:1]] * (BATCH - len(gram)))
  out = _weights_fn(**hparams)(jnp.asarray(pad, jnp.float32))
  return np.asarray(out, np.float64)[:len(gram)]


def _dual_minimum(jac, c):
  """Brute-force min over a simplex grid of g_w.g0 + c ||g0|| ||g_w||."""
  t = len(jac)
  n = 150 if t == 3 else 5000
  pts = [p for p in itertools.product(range(n + 1), repeat=t - 1)
         if sum(p) <= n]
  grid = np.array([list(p) + [n - sum(p)] for p in pts], np.float64) / n
  gw = grid @ jac
  g0 = jac.mean(0)
  values = gw @ g0 + c * np.linalg.norm(g0) * np.linalg.norm(gw, axis=1)
  return values.min()


def test_c_zero_is_the_mean():
  jac = RNG.normal(size=(2, 3, 4))
  np.testing.assert_allclose(_weights(jac, c=0.0), np.full((2, 3), 1 / 3),
                             atol=1e-7)


def test_hand_computed_orthogonal_pair():
  # g1 = e1, g2 = e2: g0 = (1/2, 1/2); F(w) = 1/2 + c/sqrt(2) ||w|| is
  # minimal at w = (1/2, 1/2) with ||g_w|| = 1/sqrt(2), so lambda = c and
  # d = g0 + c g_w = (1 + c)/2 (1, 1); rescaled by 1 + c^2: with c = 0.5
  # the weights are 0.75 / 1.25 = 0.6.
  jac = np.eye(2)[None]
  np.testing.assert_allclose(_weights(jac, c=0.5)[0], [0.6, 0.6], atol=1e-5)
  np.testing.assert_allclose(_weights(jac, c=0.5, rescale="none")[0],
                             [0.75, 0.75], atol=1e-5)


def test_single_task_and_rescale_options():
  # T = 1: w = 1, lambda = c ||g|| / ||g|| = c, d = (1 + c) g / divisor.
  gram = jnp.array([[4.0]])
  for rescale, divisor in (("quadratic", 1.25), ("linear", 1.5), ("none", 1)):
    agg = aggregation.get("cagrad", c=0.5, rescale=rescale)
    w, _ = agg.weights(gram, agg.init(1))
    np.testing.assert_allclose(w, [1.5 / divisor], rtol=1e-6)


@pytest.mark.parametrize("t", [2, 3])
def test_worst_case_improvement_is_optimal(t):
  c = 0.5
  jac = RNG.normal(size=(BATCH, t, 5))
  jac[::2] += RNG.normal(size=(BATCH // 2, 1, 5))
  w = _weights(jac, c=c, rescale="none")
  for wb, j in zip(w, jac):
    d = wb @ j
    g0 = j.mean(0)
    radius = c * np.linalg.norm(g0)
    # Feasible: inside the ball around the mean gradient ...
    assert np.linalg.norm(d - g0) <= radius * (1 + 1e-4) + 1e-6
    # ... so the average loss still decreases: g0.d >= (1 - c) ||g0||^2.
    assert g0 @ d >= (1 - c) * (g0 @ g0) * (1 - 1e-4)
    # Optimal: the worst task improvement equals the dual minimum (strong
    # duality) and beats random points of the ball.
    worst = np.min(j @ d)
    scale = np.mean(np.linalg.norm(j, axis=1)) ** 2
    np.testing.assert_allclose(worst, _dual_minimum(j, c), atol=2e-3 * scale)
    u = RNG.normal(size=(500, j.shape[1]))
    u *= (radius * RNG.uniform(size=(500, 1)) ** (1 / j.shape[1])
          / np.linalg.norm(u, axis=1, keepdims=True))
    assert worst >= np.max(np.min((g0 + u) @ j.T, axis=1)) - 1e-4 * scale


def test_errors():
  with pytest.raises(ValueError, match="'c'"):
    aggregation.get("cagrad", c=1.0)
  with pytest.raises(ValueError, match="'c'"):
    aggregation.get("cagrad", c=-0.1)
  with pytest.raises(ValueError, match="rescale"):
    aggregation.get("cagrad", rescale=2)
  with pytest.raises(ValueError, match="num_iters"):
    aggregation.get("cagrad", num_iters=0)
