"""ConFIG: the direction with equal cosine to every task gradient."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation

RNG = np.random.default_rng(4)
BATCH = 6


@functools.lru_cache(maxsize=None)
def _weights_fn(**hparams):
  agg = aggregation.get("config", **hparams)
  return jax.jit(jax.vmap(
      lambda g: agg.weights(g, agg.init(g.shape[0]), step=0)[0]))


def _directions(jac, **hparams):
  """ConFIG directions of a batch of Jacobians [B, T, P] (float64 out)."""
  jac = np.asarray(jac, np.float64)
  gram = np.einsum("bip,bjp->bij", jac, jac)
  b = len(gram)  # Pad to BATCH so every call with this T shares a compile.
  pad = np.concatenate([gram] + [gram[:1]] * (BATCH - b))
  w = np.asarray(_weights_fn(**hparams)(jnp.asarray(pad, jnp.float32)),
                 np.float64)[:b]
  return np.einsum("bt,btp->bp", w, jac)


def _config_by_formula(jac):
  """The paper's formula on the [T, P] matrix itself (float64)."""
  norms = np.linalg.norm(jac, axis=1, keepdims=True)
  units = np.where(norms > 0, jac / np.where(norms > 0, norms, 1.0), 0.0)
  target = np.linalg.pinv(units) @ np.ones(len(jac))
  unit_target = target / np.linalg.norm(target)
  return np.sum(jac @ unit_target) * unit_target


def test_hand_computed_orthogonal():
  # g = (1, 0, 0), (0, 3, 0), (0, 0, 2): unit vectors e_t, U^+ 1 = (1, 1, 1),
  # unit target (1, 1, 1) / sqrt(3), length (1 + 3 + 2) / sqrt(3):
  # d = (2, 2, 2).
  d = _directions(np.diag([1.0, 3.0, 2.0])[None])
  np.testing.assert_allclose(d[0], [2.0, 2.0, 2.0], rtol=1e-6)


def test_equal_cosines_and_matches_the_matrix_formula():
  jac = RNG.normal(size=(BATCH, 3, 5)) * RNG.uniform(0.1, 10.0,
                                                     size=(BATCH, 3, 1))
  d = _directions(jac)
  for jb, db in zip(jac, d):
    np.testing.assert_allclose(db, _config_by_formula(jb), rtol=1e-4,
                               atol=1e-5 * np.linalg.norm(db))
    cos = jb @ db / (np.linalg.norm(jb, axis=1) * np.linalg.norm(db))
    assert np.all(cos > 0)
    np.testing.assert_allclose(cos, cos[0], rtol=1e-4)


def test_direction_ignores_per_task_scale():
  # Only the unit gradients set the direction; the length is the sum of the
  # projections.
  jac = RNG.normal(size=(BATCH, 3, 5))
  scaled = jac * np.array([1e-3, 1.0, 1e3])[None, :, None]
  d, ds = _directions(jac), _directions(scaled)
  for a, b, jb in zip(d, ds, scaled):
    np.testing.assert_allclose(a / np.linalg.norm(a), b / np.linalg.norm(b),
                               atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(b), np.sum(jb @ b) /
                               np.linalg.norm(b), rtol=1e-4)


def test_duplicated_opposite_and_zero_gradients():
  g = np.array([3.0, -1.0, 2.0])
  h = np.array([0.5, 2.0, 1.0])
  jac = np.stack([
      [g, g, g],              # duplicated: U^+ 1 = u, length 3 |g|: d = 3 g
      [g, -g, np.zeros(3)],   # opposite: no consistent direction: d = 0
      [g, h, np.zeros(3)],    # a zero gradient is left out of U
  ])
  d = _directions(jac)
  np.testing.assert_allclose(d[0], 3 * g, rtol=1e-5)
  np.testing.assert_allclose(d[1], 0.0, atol=1e-6)
  np.testing.assert_allclose(d[2], _config_by_formula(jac[2]), rtol=1e-5)


@pytest.mark.parametrize("hparams,name", [
    (dict(rtol=-0.1), "rtol"), (dict(rtol=1.0), "rtol"),
    (dict(norm_eps=0.0), "norm_eps")])
def test_out_of_domain_hyperparameters_raise(hparams, name):
  with pytest.raises(ValueError, match=name):
    aggregation.get("config", **hparams)


def test_nearly_anti_parallel_gradients_still_move():
  # 6e-3 rad from anti-parallel: cosine-matrix eigenvalue ratio
  # theta^2 / 4 = 9e-6, far above float32 rounding, so the equal-cosine
  # direction exists and improves both tasks (the former default
  # rtol = 1e-5 cut it: d = 0, stopping short of the toy's Pareto set).
  theta = 6e-3
  jac = np.array([[1.0, 0.0], [-2.0 * np.cos(theta), 2.0 * np.sin(theta)]])
  d = _directions(jac[None])[0]
  assert np.all(jac @ d > 0)
  np.testing.assert_allclose(d, _config_by_formula(jac), rtol=1e-3)
  np.testing.assert_allclose(_directions(jac[None], rtol=1e-5)[0], 0.0,
                             atol=1e-6)


def test_rounding_noise_of_collinear_gradients_is_cut():
  # g_t = a_t u with mixed signs, T = 3: U^+ 1 is along u, so d = sum_t g_t.
  # The two zero eigenvalues come out of float32 as up to ~4 eps; the
  # default cut-off (1e-6, ~8 eps) must still drop them.
  rng = np.random.default_rng(13)
  a = rng.uniform(0.1, 10.0, size=(BATCH, 3, 1)) * rng.choice(
      [-1, 1], (BATCH, 3, 1))
  jac = a * rng.normal(size=(BATCH, 1, 64)) * 10.0 ** rng.uniform(
      -3, 3, (BATCH, 1, 1))
  jac = jac.astype(np.float32).astype(np.float64)
  d = _directions(jac)
  for db, j in zip(d, jac):
    np.testing.assert_allclose(db, j.sum(0), rtol=1e-4,
                               atol=1e-4 * np.abs(j).max())
