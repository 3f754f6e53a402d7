"""UPGrad: the mean of the gradients projected onto their dual cone."""

import functools

import numpy as np
import pytest

from mtl_jax import aggregation
from tests.aggregation import helpers

RNG = np.random.default_rng(1)


_weights_fn = functools.partial(helpers.weights_fn, "upgrad")


def _weights(jac, **hparams):
  """UPGrad weights of a batch of Jacobians [B, T, P] (float64 out)."""
  return helpers.weights("upgrad", jac, **hparams)[0]


def test_hand_computed_conflicting_pair():
  # g1 = (1, 0), g2 = (-2, 1), g1.g2 = -2 < 0. Projections onto the dual cone:
  # g1 - (g1.g2 / |g2|^2) g2 = (0.2, 0.4) = 1 g1 + 0.4 g2, and
  # g2 - (g2.g1 / |g1|^2) g1 = (0, 1) = 2 g1 + 1 g2. Mean: (0.1, 0.7), with
  # weights (1.5, 0.7); the sum doubles them.
  jac = np.array([[[1.0, 0.0], [-2.0, 1.0]]])
  w = _weights(jac, reg_eps=0.0)
  np.testing.assert_allclose(w[0], [1.5, 0.7], atol=1e-6)
  np.testing.assert_allclose(w[0] @ jac[0], [0.1, 0.7], atol=1e-6)
  np.testing.assert_allclose(_weights(jac, reg_eps=0.0, reduction="sum")[0],
                             [3.0, 1.4], atol=1e-6)


def test_opposite_gradients_cancel():
  # g and -g: the dual cone is the hyperplane g^T v = 0, both projections are
  # 0 (exactly, weights (1, 1) each, without the ridge).
  jac = np.array([[[1.0, 2.0], [-1.0, -2.0]]])
  w = _weights(jac, reg_eps=0.0)
  np.testing.assert_allclose(w[0], [1.0, 1.0], atol=1e-6)
  assert np.abs(w[0] @ jac[0]).max() < 1e-6


def test_non_conflicting_gradients_give_the_mean():
  # All entries positive: every pair has a positive inner product, each g_i
  # is in the dual cone, so the projections are the identity (ridge or not).
  jac = RNG.uniform(0.1, 1.0, size=(4, 3, 3))
  jac[0] = [[1.0, 0.0, 0.0], [1.0, 2.0, 0.0], [0.0, 1.0, 3.0]]
  np.testing.assert_allclose(_weights(jac), 1 / 3, atol=1e-6)
  # With the default ridge, g, -g, g still cancels (to O(reg_eps)).
  g = np.array([1.0, 2.0, -1.0])
  d = _weights(np.stack([[g, -g, g]]))[0] @ np.stack([g, -g, g])
  assert np.abs(d).max() < 1e-3


def test_matches_brute_force_projection_and_stays_in_the_dual_cone():
  # T = 3 random conflicting gradients (two rank-deficient batches): the
  # direction is the mean of the exact projections, and J d >= 0.
  jac = RNG.normal(size=(6, 3, 4))
  jac[:2, :, 2:] = 0.0
  w = _weights(jac, reg_eps=0.0)
  for jb, wb in zip(jac, w):
    expected = np.mean([helpers.project_onto_dual_cone(jb, g) for g in jb], axis=0)
    scale = np.abs(jb).max()
    np.testing.assert_allclose(wb @ jb, expected, atol=2e-5 * scale)
    assert np.all(jb @ (wb @ jb) >= -1e-5 * scale ** 2)
  w_reg = _weights(jac)  # Default ridge: still (almost) conflict-free.
  for jb, wb in zip(jac, w_reg):
    gram = jb @ jb.T
    assert np.all(gram @ wb >= -1e-3 * np.trace(gram) * np.abs(wb).max())
  # Scale free: the same weights for gradients 1e12 times larger or smaller.
  np.testing.assert_allclose(_weights(jac * 1e12), w_reg, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(_weights(jac * 1e-12), w_reg, rtol=1e-5,
                             atol=1e-6)


@pytest.mark.parametrize("hparams,name", [
    (dict(reg_eps=-1e-3), "reg_eps"), (dict(norm_eps=0.0), "norm_eps"),
    (dict(reduction="max"), "reduction"), (dict(iterations=0), "iterations")])
def test_out_of_domain_hyperparameters_raise(hparams, name):
  with pytest.raises(ValueError, match=name):
    aggregation.get("upgrad", **hparams)


@pytest.mark.parametrize("name", ["upgrad", "dualproj"])
def test_trace_threshold_gives_torchjds_mean_below_it(name):
  # Conflicting gradients with tr(G) ~ 1e-6: by default still projected (as
  # at unit scale, computed in numpy); with trace_threshold = 1e-4 (TorchJD's
  # norm_eps) the Gramian counts as zero and the update is the mean.
  jac = np.array([[1.0, 0.0, 0.5], [-0.8, 0.6, 0.0], [0.1, -0.9, 0.3]])
  small = 4e-4 * jac
  assert np.trace(small @ small.T) < 1e-4
  if name == "upgrad":
    expected = np.mean([helpers.project_onto_dual_cone(small, g)
                        for g in small], axis=0)
  else:
    expected = helpers.project_onto_dual_cone(small, small.mean(0))
  d, _, _ = helpers.update(name, small, reg_eps=0.0)
  np.testing.assert_allclose(d, expected, rtol=1e-3, atol=1e-9)
  assert np.abs(d - small.mean(0)).max() > 1e-2 * np.abs(small).max()
  d, w, _ = helpers.update(name, small, reg_eps=0.0, trace_threshold=1e-4)
  np.testing.assert_allclose(w, np.full(3, 1 / 3), rtol=1e-6)
  np.testing.assert_allclose(d, small.mean(0), rtol=1e-5)
  with pytest.raises(ValueError, match="trace_threshold"):
    aggregation.get(name, trace_threshold=-1.0)
