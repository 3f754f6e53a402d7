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


def _nearly_opposite(theta):
  """Gradients of norms 1 and 2 that are ``theta`` rad from anti-parallel."""
  return np.array([[1.0, 0.0],
                   [-2.0 * np.cos(theta), 2.0 * np.sin(theta)]])


def test_nearly_anti_parallel_gradients_still_move():
  # 6e-3 rad from anti-parallel: eigenvalue ratio 0.16 theta^2 = 5.8e-6,
  # far above float32 rounding, so the direction is kept (the former
  # default rcond = 1e-5 cut it and stopped 0.16 short of the toy problem's
  # Pareto set): the full-rank alignment, which descends the summed loss.
  jac = _nearly_opposite(6e-3)
  agg = aggregation.get("aligned_mtl")
  d, _ = jax.jit(agg.update)(jnp.asarray(jac, jnp.float32), agg.init(2))
  d = np.asarray(d, np.float64)
  lam, vec = np.linalg.eigh(jac @ jac.T)
  exact = np.sqrt(lam[0]) * ((vec / np.sqrt(lam)) @ vec.T).sum(1) @ jac
  np.testing.assert_allclose(d, exact, rtol=1e-3)
  assert jac.sum(0) @ d > 0
  # rcond = 1e-5 keeps rank one: d = J^T v_max (v_max . 1), along the
  # conflict instead of the aligned direction.
  old = aggregation.get("aligned_mtl", rcond=1e-5)
  d_old, _ = jax.jit(old.update)(jnp.asarray(jac, jnp.float32), old.init(2))
  v = vec[:, -1]
  np.testing.assert_allclose(d_old, v.sum() * v @ jac, rtol=1e-3)


def test_rounding_noise_of_collinear_gradients_is_cut():
  # g_t = a_t u (rank one, signs mixed): the exact update is sum_t g_t. The
  # two zero eigenvalues come out of float32 as up to ~4 eps * lambda_max;
  # the default cut-off (1e-6, ~8 eps) must still drop them.
  rng = np.random.default_rng(12)
  a = rng.uniform(0.1, 10.0, size=(8, 3, 1)) * rng.choice([-1, 1], (8, 3, 1))
  jac = a * rng.normal(size=(8, 1, 64)) * 10.0 ** rng.uniform(-3, 3,
                                                              (8, 1, 1))
  jac = jac.astype(np.float32).astype(np.float64)
  b = _alignment(jac)
  for bk, j in zip(b, jac):
    np.testing.assert_allclose(bk.sum(1) @ j, j.sum(0), rtol=1e-4,
                               atol=1e-4 * np.abs(j).max())


@pytest.mark.parametrize("reduction,divisor", [("sum", 1.0), ("mean", 4.0)])
def test_weights_match_the_papers_formula(reduction, divisor):
  # The paper / LibMTL: B = sqrt(lambda_min) V diag(lambda^-1/2) V^T on the
  # eigenpairs of G = J J^T, w = B 1 (TorchJD's mean preference: B 1 / T).
  jac = RNG.normal(size=(4, 7)) + RNG.normal(size=(1, 7))
  gram = jac @ jac.T
  lam, vec = np.linalg.eigh(gram)
  b = np.sqrt(lam.min()) * (vec / np.sqrt(lam)) @ vec.T
  expected = b.sum(1) / divisor
  agg = aggregation.get("aligned_mtl", reduction=reduction)
  w, _ = jax.jit(agg.weights)(jnp.asarray(gram, jnp.float32), agg.init(4))
  np.testing.assert_allclose(w, expected, rtol=2e-4)
  with pytest.raises(ValueError, match="reduction"):
    aggregation.get("aligned_mtl", reduction="max")
