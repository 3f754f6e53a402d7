"""DualProj: the mean gradient projected onto the dual cone of the gradients."""

import functools

import numpy as np
import pytest

from mtl_jax import aggregation
from tests.aggregation import helpers

RNG = np.random.default_rng(2)


_weights_fn = functools.partial(helpers.weights_fn, "dualproj")


def _weights(jac, **hparams):
  """DualProj weights of a batch of Jacobians [B, T, P] (float64 out)."""
  return helpers.weights("dualproj", jac, **hparams)[0]


def test_hand_computed_conflicting_pair():
  # g1 = (1, 0), g2 = (-2, 1): mean m = (-0.5, 0.5) has m.g1 = -0.5 < 0 and
  # m.g2 = 1.5 > 0, so it is projected onto g1^T v = 0: v = m + 0.5 g1 =
  # (0, 0.5) (v.g2 = 0.5 >= 0), i.e. weights (0.5 + 0.5, 0.5) = (1, 0.5).
  jac = np.array([[[1.0, 0.0], [-2.0, 1.0]]])
  w = _weights(jac, reg_eps=0.0)
  np.testing.assert_allclose(w[0], [1.0, 0.5], atol=1e-6)
  np.testing.assert_allclose(w[0] @ jac[0], [0.0, 0.5], atol=1e-6)
  np.testing.assert_allclose(_weights(jac, reg_eps=0.0, reduction="sum")[0],
                             [2.0, 1.0], atol=1e-6)


def test_mean_kept_when_it_conflicts_with_no_task_and_opposite_cancel():
  # g1 = (1, 0), g2 = (-1, 2): g1.g2 = -1 < 0 but the mean (0, 1) has
  # m.g1 = 0, m.g2 = 2: already in the cone. Opposite g, -g: m = 0.
  jac = np.array([[[1.0, 0.0], [-1.0, 2.0]], [[1.0, 0.0], [1.0, 1.0]],
                  [[1.0, 2.0], [-1.0, -2.0]]])
  w = _weights(jac, reg_eps=0.0)
  np.testing.assert_allclose(w, 0.5, atol=1e-6)
  np.testing.assert_allclose(w[2] @ jac[2], 0.0, atol=1e-6)


def test_matches_brute_force_projection_and_stays_in_the_dual_cone():
  jac = RNG.normal(size=(6, 3, 4))
  jac[:2, :, 2:] = 0.0  # Rank-deficient: three gradients in a plane.
  w = _weights(jac, reg_eps=0.0)
  for jb, wb in zip(jac, w):
    expected = helpers.project_onto_dual_cone(jb, jb.mean(0))
    scale = np.abs(jb).max()
    np.testing.assert_allclose(wb @ jb, expected, atol=2e-5 * scale)
    assert np.all(jb @ (wb @ jb) >= -1e-5 * scale ** 2)
    assert np.all(wb >= 1 / 3 - 1e-7)
  w_reg = _weights(jac)
  for jb, wb in zip(jac, w_reg):
    gram = jb @ jb.T
    assert np.all(gram @ wb >= -1e-3 * np.trace(gram) * np.abs(wb).max())
  # Scale free.
  np.testing.assert_allclose(_weights(jac * 1e12), w_reg, rtol=1e-5,
                             atol=1e-6)


@pytest.mark.parametrize("hparams,name", [
    (dict(reg_eps=-1.0), "reg_eps"), (dict(norm_eps=-1.0), "norm_eps"),
    (dict(reduction="median"), "reduction"),
    (dict(iterations=-3), "iterations")])
def test_out_of_domain_hyperparameters_raise(hparams, name):
  with pytest.raises(ValueError, match=name):
    aggregation.get("dualproj", **hparams)
