"""MGDA: the min-norm point of the convex hull of the task gradients."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation

RNG = np.random.default_rng(0)
BATCH = 6


@functools.lru_cache(maxsize=None)
def _weights_fn(**hparams):
  """Jitted, vmapped ``weights``: [B, T, T] Gramians (and losses) -> [B, T]."""
  agg = aggregation.get("mgda", **hparams)
  return jax.jit(jax.vmap(
      lambda g, losses: agg.weights(g, agg.init(g.shape[0]), losses=losses,
                                    step=0)[0]))


def _weights(jac, losses=None, **hparams):
  """MGDA weights of a batch of Jacobians [B, T, P] (float64 numpy out)."""
  jac = np.asarray(jac, np.float64)
  gram = np.einsum("bip,bjp->bij", jac, jac)
  if losses is None:
    losses = np.ones(jac.shape[:2])
  b = len(gram)  # Pad the batch to 6 so every call shares one compilation.
  pad = lambda x: np.concatenate([x] + [x[:1]] * (BATCH - b))
  out = _weights_fn(**hparams)(jnp.asarray(pad(gram), jnp.float32),
                               jnp.asarray(pad(losses), jnp.float32))
  return np.asarray(out, np.float64)[:b], gram


def _grid(t, n):
  """Every point of the simplex with coordinates in multiples of 1/n."""
  pts = [c for c in itertools.product(range(n + 1), repeat=t - 1)
         if sum(c) <= n]
  return np.array([list(c) + [n - sum(c)] for c in pts], np.float64) / n


def test_hand_computed_orthogonal_pair():
  # g1 = (1, 0), g2 = (0, 2): min ||w1 g1 + w2 g2||^2 = w1^2 + 4 w2^2 on the
  # simplex -> w = (0.8, 0.2), d = (0.8, 0.4), ||d|| = 2 / sqrt(5).
  jac = np.array([[[1.0, 0.0], [0.0, 2.0]]])
  w, _ = _weights(jac)
  np.testing.assert_allclose(w[0], [0.8, 0.2], atol=1e-6)
  d = w[0] @ jac[0]
  np.testing.assert_allclose(d, [0.8, 0.4], atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(d), 2 / np.sqrt(5), atol=1e-6)


@pytest.mark.parametrize("solver,tol,t", [
    ("projected_gradient", 1e-5, 2),
    ("projected_gradient", 1e-5, 3),
    ("frank_wolfe", 1e-3, 3),  # For T = 2 both return the exact segment.
])
def test_min_norm_point_matches_brute_force_and_kkt(solver, tol, t):
  jac = RNG.normal(size=(6, t, 4))
  jac[:3] += RNG.normal(size=(3, 1, 4))  # Some with large common parts.
  hparams = {} if solver == "projected_gradient" else {"solver": solver}
  w, gram = _weights(jac, **hparams)
  grid = _grid(t, 400 if t == 3 else 20000)
  for g, wb in zip(gram, w):
    assert np.all(wb >= -1e-7) and abs(wb.sum() - 1) < 1e-5
    value = wb @ g @ wb
    brute = np.min(np.einsum("ni,ij,nj->n", grid, g, grid))
    scale = np.mean(np.diag(g))
    assert value <= brute + tol * scale
    # KKT: (G w)_t >= w^T G w everywhere, with equality on the support.
    gw = g @ wb
    assert np.all(gw >= value - 10 * tol * scale)
    support = wb > 1e-3
    np.testing.assert_allclose(gw[support], value, atol=10 * tol * scale)


def test_direction_is_a_common_descent_direction():
  jac = RNG.normal(size=(6, 3, 7)) + 2.0 * RNG.normal(size=(6, 1, 7))
  w, _ = _weights(jac)
  for wb, j in zip(w, jac):
    d = wb @ j
    assert np.all(j @ d >= (d @ d) * (1 - 1e-3))


def test_normalizations_hand_computed():
  jac = np.array([[[1.0, 0.0], [0.0, 2.0]]])
  losses = np.array([[1.0, 4.0]])
  # l2: unit gradients e1, e2 -> w_hat = (1/2, 1/2), w = w_hat / ||g||.
  w, _ = _weights(jac, losses, normalization="l2")
  np.testing.assert_allclose(w[0], [0.5, 0.25], atol=1e-6)
  # loss: h = (1, 0), (0, 0.5) -> w_hat = (0.2, 0.8), w = w_hat / L.
  w, _ = _weights(jac, losses, normalization="loss")
  np.testing.assert_allclose(w[0], [0.2, 0.2], atol=1e-6)
  # loss+: h = g / (L ||g||) = (1, 0), (0, 0.25) -> w_hat = (1/17, 16/17),
  # w = w_hat / (L ||g||) = (1/17, 2/17).
  w, _ = _weights(jac, losses, normalization="loss+")
  np.testing.assert_allclose(w[0], [1 / 17, 2 / 17], atol=1e-6)


def test_scale_free_and_zero_gradient():
  jac = RNG.normal(size=(1, 3, 7))
  zero_row = jac.copy()
  zero_row[0, 1] = 0.0
  batch = np.concatenate([jac, 1e-15 * jac, 1e15 * jac, zero_row])
  w, _ = _weights(batch)
  np.testing.assert_allclose(w[1], w[0], atol=1e-5)
  np.testing.assert_allclose(w[2], w[0], atol=1e-5)
  # 0 is in the hull: Pareto-stationary, the direction is zero.
  np.testing.assert_allclose(w[3] @ zero_row[0], 0.0, atol=1e-6)


def test_errors():
  with pytest.raises(ValueError, match="normalization"):
    aggregation.get("mgda", normalization="l1")
  with pytest.raises(ValueError, match="solver"):
    aggregation.get("mgda", solver="cvxpy")
  with pytest.raises(ValueError, match="num_iters"):
    aggregation.get("mgda", num_iters=0)
  agg = aggregation.get("mgda", normalization="loss")
  with pytest.raises(ValueError, match="losses"):
    agg.weights(jnp.eye(2), agg.init(2))
