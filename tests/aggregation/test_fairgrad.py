"""FairGrad: the alpha-fair allocation G w = w^(-1/alpha)."""

import functools

import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation
from tests.aggregation import helpers

RNG = np.random.default_rng(5)
BATCH = helpers.BATCH


_weights_fn = functools.partial(helpers.weights_fn, "fairgrad")


def _weights(jac, **hparams):
  return helpers.weights("fairgrad", jac, **hparams)


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_hand_computed_orthogonal(alpha):
  # Orthogonal gradients: G diagonal, G_tt w_t = w_t^(-1/alpha), so
  # w_t = G_tt^(-alpha/(1+alpha)) = ||g_t||^(-2 alpha/(1+alpha)).
  norms = np.array([1.0, 2.0, 0.5, 3.0])
  w, _ = _weights(np.diag(norms)[None], alpha=alpha, max_norm=0.0)
  np.testing.assert_allclose(w[0], norms ** (-2 * alpha / (1 + alpha)),
                             rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_fairness_equations_hold_on_random_gramians(alpha):
  jac = RNG.normal(size=(BATCH, 4, 10)) * RNG.uniform(
      0.01, 100.0, size=(BATCH, 1, 1))
  w, gram = _weights(jac, alpha=alpha, max_norm=0.0)
  for g, wb, jb in zip(gram, w, jac):
    assert np.all(wb > 0)
    rhs = wb ** (-1.0 / alpha)
    np.testing.assert_allclose(g @ wb, rhs, rtol=1e-4)
    assert np.all(jb @ (wb @ jb) > 0)  # Every task improves.
  # Scaling G by c scales w by c^(-alpha / (1 + alpha)), exactly.
  w_big, _ = _weights(jac * 1e3, alpha=alpha, max_norm=0.0)
  np.testing.assert_allclose(w_big, w * 1e6 ** (-alpha / (1 + alpha)),
                             rtol=1e-4)


def test_max_norm_clips_the_update():
  jac = RNG.normal(size=(BATCH, 4, 10)) * np.array(
      [1e-3, 0.1, 1.0, 10.0, 100.0, 1e4])[:, None, None]
  w_free, gram = _weights(jac, alpha=2.0, max_norm=0.0)
  w, _ = _weights(jac, alpha=2.0, max_norm=1.0)
  for g, wf, wb in zip(gram, w_free, w):
    free_norm = np.sqrt(wf @ g @ wf)
    np.testing.assert_allclose(wb, wf * min(1.0, 1.0 / free_norm), rtol=1e-5)


@pytest.mark.parametrize("hparams,name", [
    (dict(alpha=0.0), "alpha"), (dict(alpha=-2.0), "alpha"),
    (dict(max_norm=-1.0), "max_norm"), (dict(reg_eps=0.0), "reg_eps"),
    (dict(norm_eps=0.0), "norm_eps"), (dict(iterations=0), "iterations")])
def test_out_of_domain_hyperparameters_raise(hparams, name):
  with pytest.raises(ValueError, match=name):
    aggregation.get("fairgrad", **hparams)


# Regression: on the toy benchmark's Pareto set the two task gradients are
# anti-parallel to float32 precision (Gramian eigenvalues -4e-9 and 0.69):
# the update norm was 64 despite max_norm = 1 (up to 5e15 in the benchmark).
REPRO_JAC = np.array([[-0.19899285, -0.00027255394],
                      [0.8087746, 0.0011050203]], np.float32)


def _update(jac, **hparams):
  d, w, state = helpers.update("fairgrad", jac, **hparams)
  return d, w


def _ridge_bound(jac, alpha, reg_eps=1e-8):
  """Bound on ||w||: eps ||v||^2 <= sum v^p on G / s, then w = v s^(-a/(1+a))."""
  jac = np.asarray(jac, np.float64)
  s = max(np.mean(np.sum(jac * jac, axis=1)), 1e-20)
  p = 1.0 - 1.0 / alpha
  return np.sqrt(len(jac)) * reg_eps ** (-1 / (2 - p)) * s ** (
      -alpha / (1 + alpha))


@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.5])
def test_anti_parallel_to_float32_precision_is_clipped(alpha):
  d, w = _update(REPRO_JAC, alpha=alpha)
  assert np.all(np.isfinite(d)) and np.all(np.isfinite(w))
  assert np.linalg.norm(d) <= 1.0 + 1e-5
  assert np.linalg.norm(w @ REPRO_JAC.astype(np.float64)) <= 1.0 + 1e-5
  _, w_free = _update(REPRO_JAC, alpha=alpha, max_norm=0.0)
  assert np.all(np.isfinite(w_free)) and np.all(w_free > 0)
  if alpha >= 1:
    assert np.linalg.norm(w_free) <= _ridge_bound(REPRO_JAC, alpha)


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e15])
def test_anti_parallel_gradients_at_every_scale(scale):
  base = RNG.normal(size=5)
  jac = (scale * np.stack([base, -0.37 * base])).astype(np.float32)
  d, w = _update(jac)
  assert np.all(np.isfinite(d)) and np.all(np.isfinite(w))
  assert np.linalg.norm(d) <= 1.0 + 1e-5
  _, w_free = _update(jac, max_norm=0.0)
  assert np.all(np.isfinite(w_free)) and np.all(w_free > 0)
  if scale > 1e-20:   # (1e-30 gradients: the float32 Gramian underflows.)
    assert np.linalg.norm(w_free) <= 1.05 * _ridge_bound(jac, 1.0)


def test_rank_one_gramian_with_negative_rounding_eigenvalue():
  grams, jacs = helpers.rank_one_gramians_with_negative_eigenvalue()
  w = np.asarray(_weights_fn()(jnp.asarray(grams)), np.float64)
  w_free = np.asarray(_weights_fn(max_norm=0.0)(jnp.asarray(grams)),
                      np.float64)
  assert np.all(np.isfinite(w)) and np.all(np.isfinite(w_free))
  assert np.all(w_free > 0)
  s = 0.3 / 3   # mean of diag G
  assert np.all(np.linalg.norm(w_free, axis=1)
                <= 1.05 * np.sqrt(3 / 1e-8) / np.sqrt(s))
  assert np.all(np.abs(np.sum(w * jacs, axis=1)) <= 1.0 + 1e-5)


def test_scale_by_num_tasks_as_the_reference_code():
  # The reference multiplies the fair weights by T before clipping: w / T
  # solves G (w / T) = (w / T)^(-1 / alpha), then the update is clipped.
  jac = RNG.normal(size=(BATCH, 4, 10)) * np.array(
      [1e-3, 0.1, 1.0, 10.0, 100.0, 1e4])[:, None, None]
  w, gram = _weights(jac, alpha=2.0, max_norm=0.0, scale_by_num_tasks=True)
  for g, wb in zip(gram, w):
    v = wb / 4
    np.testing.assert_allclose(g @ v, v ** (-0.5), rtol=1e-4)
  w_clip, _ = _weights(jac, alpha=2.0, max_norm=1.0, scale_by_num_tasks=True)
  for g, wb, wc in zip(gram, w, w_clip):
    norm = np.sqrt(wb @ g @ wb)
    np.testing.assert_allclose(wc, wb * min(1.0, 1.0 / norm), rtol=1e-4)
  with pytest.raises(ValueError, match="scale_by_num_tasks"):
    aggregation.get("fairgrad", scale_by_num_tasks=1)
