"""Aligned-MTL: an aligned gradient system with condition number one."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation
from mtl_jax.aggregation.aligned_mtl import alignment_matrix

RNG = np.random.default_rng(6)


@functools.lru_cache(maxsize=None)
def _alignment_fn(scale_mode):
  return jax.jit(jax.vmap(lambda g: alignment_matrix(g, scale_mode)))


def _alignment(jac, scale_mode="min"):
  gram = np.einsum("bip,bjp->bij", jac, jac)
  b = len(gram)  # Pad the batch to 8: one compilation per scale mode.
  gram = np.concatenate([gram] + [gram[:1]] * (8 - b))
  out = _alignment_fn(scale_mode)(jnp.asarray(gram, jnp.float32))
  return np.asarray(out, np.float64)[:b]


def test_hand_computed_orthogonal():
  # Rows of norms 1, 2, 3 along e1, e2, e3: eigenvalues 1, 4, 9.
  # min: every row rescaled to norm 1 -> d = (1, 1, 1); median: to norm 2;
  # rmse: to norm sqrt(14 / 3).
  jac = np.diag([1.0, 2.0, 3.0])[None]
  for mode, norm in (("min", 1.0), ("median", 2.0), ("rmse", np.sqrt(14 / 3))):
    b = _alignment(jac, mode)[0]
    np.testing.assert_allclose(b.sum(1) @ jac[0], np.full(3, norm), rtol=1e-5)
  agg = aggregation.get("aligned_mtl")
  w, _ = jax.jit(agg.weights)(jnp.asarray(jac[0] @ jac[0].T, jnp.float32),
                              agg.init(3))
  np.testing.assert_allclose(w, [1.0, 0.5, 1 / 3], rtol=1e-5)


def test_aligned_system_has_condition_number_one():
  jac = RNG.normal(size=(8, 3, 6)) + RNG.normal(size=(8, 1, 6))
  jac[4:, 2] = jac[4:, 0]  # Rank-deficient: a duplicated gradient.
  b = _alignment(jac)
  for k, (bk, j) in enumerate(zip(b, jac)):
    sv = np.linalg.svd(bk @ j, compute_uv=False)
    rank = 3 if k < 4 else 2
    lam_min = np.linalg.svd(j, compute_uv=False)[rank - 1]
    np.testing.assert_allclose(sv[:rank], lam_min, rtol=1e-3)
    assert np.all(sv[rank:] < 1e-3 * sv[0])
    # B J is the Procrustes solution: J's singular vectors, equal values.
    u, _, vt = np.linalg.svd(j, full_matrices=False)
    np.testing.assert_allclose(bk @ j, lam_min * u[:, :rank] @ vt[:rank],
                               atol=1e-3 * np.abs(j).max())


def test_zero_and_scaled_gradients():
  jac = RNG.normal(size=(1, 3, 6))
  batch = np.concatenate([jac, 1e-12 * jac, 1e12 * jac, np.zeros_like(jac)])
  b = _alignment(batch)
  assert np.all(np.isfinite(b))
  np.testing.assert_allclose(b[1], b[0], atol=1e-4)
  np.testing.assert_allclose(b[2], b[0], atol=1e-4)
  np.testing.assert_array_equal(b[3], 0.0)


def test_errors():
  with pytest.raises(ValueError, match="scale_mode"):
    aggregation.get("aligned_mtl", scale_mode="max")
  with pytest.raises(ValueError, match="rcond"):
    aggregation.get("aligned_mtl", rcond=0.0)
