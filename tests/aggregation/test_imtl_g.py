"""IMTL-G: equal projections onto every unit task gradient."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation

RNG = np.random.default_rng(4)


@functools.lru_cache(maxsize=None)
def _weights_fn():
  agg = aggregation.get("imtl_g")
  return jax.jit(jax.vmap(lambda g: agg.weights(g, agg.init(g.shape[0]))[0]))


def _weights(jac):
  gram = np.einsum("bip,bjp->bij", jac, jac)
  return np.asarray(_weights_fn()(jnp.asarray(gram, jnp.float32)), np.float64)


def _paper(jac):
  """The paper's closed form alpha_{2:T} = g_1 U^T (D U^T)^-1 (numpy)."""
  unit = jac / np.linalg.norm(jac, axis=1, keepdims=True)
  d, u = jac[0] - jac[1:], unit[0] - unit[1:]
  rest = jac[0] @ u.T @ np.linalg.inv(d @ u.T)
  return np.concatenate([[1 - rest.sum()], rest])


def test_hand_computed_orthogonal_pair():
  # g1 = (1, 0), g2 = (0, 2): d = (a1, 2 a2) with d.u1 = a1 = d.u2 = 2 a2 and
  # a1 + a2 = 1 -> alpha = (2/3, 1/3), d = (2/3, 2/3).
  jac = np.array([[[1.0, 0.0], [0.0, 2.0]]] * 8)
  w = _weights(jac)[0]
  np.testing.assert_allclose(w, [2 / 3, 1 / 3], atol=1e-6)
  np.testing.assert_allclose(w @ jac[0], [2 / 3, 2 / 3], atol=1e-6)


def test_equal_projections_and_paper_formula():
  jac = RNG.normal(size=(8, 2, 6))
  jac3 = RNG.normal(size=(8, 3, 6)) + RNG.normal(size=(8, 1, 6))
  for batch in (jac, jac3):
    w = _weights(batch)
    for wb, j in zip(w, batch):
      np.testing.assert_allclose(wb.sum(), 1.0, atol=1e-5)
      d = wb @ j
      proj = j @ d / np.linalg.norm(j, axis=1)
      np.testing.assert_allclose(proj, proj[0], rtol=1e-3, atol=1e-4)
      np.testing.assert_allclose(wb, _paper(j), rtol=1e-3, atol=1e-4)


def test_degenerate_gradients():
  g = RNG.normal(size=5)
  h = RNG.normal(size=5)
  batch = np.stack([
      np.stack([g, g, h]),           # duplicated
      np.stack([g, -g, h]),          # opposite pair
      np.stack([g, np.zeros(5), h]),  # a zero gradient
      np.zeros((3, 5)),              # all zero
  ] * 2)
  w = _weights(batch)
  assert np.all(np.isfinite(w))
  np.testing.assert_allclose(w[:4].sum(1), 1.0, atol=1e-5)
  np.testing.assert_allclose(w[0, 0], w[0, 1], atol=1e-5)  # Symmetric.
  np.testing.assert_allclose(w[2, 1], 0.0, atol=1e-6)  # Zero task left out.
  d = w[2] @ batch[2]  # ... and the others are still impartial.
  np.testing.assert_allclose(d @ g / np.linalg.norm(g),
                             d @ h / np.linalg.norm(h), rtol=1e-4)
  np.testing.assert_allclose(w[3], np.full(3, 1 / 3), atol=1e-6)


def test_errors():
  with pytest.raises(ValueError, match="rcond"):
    aggregation.get("imtl_g", rcond=2.0)
