"""Nash-MTL: the bargaining solution G alpha = 1 / alpha."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation
from tests.aggregation import helpers

RNG = np.random.default_rng(3)
BATCH = helpers.BATCH


_weights_fn = functools.partial(helpers.weights_fn, "nash_mtl")


def _weights(jac, **hparams):
  return helpers.weights("nash_mtl", jac, **hparams)


def test_hand_computed_orthogonal_and_duplicated():
  # Orthogonal gradients with norms (2, 0.5, 1, 4): G diagonal, so
  # G_tt alpha_t^2 = 1 gives alpha_t = 1 / ||g_t||. Four equal gradients
  # g = (3, 4, 0, 0): 25 * 4 a = 1 / a -> a = 1 / (2 * 5) = 0.1.
  g = np.array([3.0, 4.0, 0.0, 0.0])
  jac = np.stack([np.diag([2.0, 0.5, 1.0, 4.0]), np.stack([g] * 4)])
  w, gram = _weights(jac, max_norm=0.0)
  np.testing.assert_allclose(w[0], [0.5, 2.0, 1.0, 0.25], rtol=1e-5)
  np.testing.assert_allclose(w[1], 0.1, rtol=1e-5)
  # homogeneous=True: solved on G / ||G||_F and returned as such, i.e.
  # sqrt(||G||_F) times the raw solution.
  w_ref, _ = _weights(jac, max_norm=0.0, homogeneous=True)
  for wr, wb, gb in zip(w_ref, w, gram):
    np.testing.assert_allclose(wr, wb * np.sqrt(np.linalg.norm(gb)),
                               rtol=1e-5)


def test_bargaining_equations_hold_and_every_task_improves():
  jac = RNG.normal(size=(BATCH, 4, 10))
  w, gram = _weights(jac, max_norm=0.0)
  w_ref, _ = _weights(jac, max_norm=0.0, homogeneous=True)
  for g, wb, wr, jb in zip(gram, w, w_ref, jac):
    assert np.all(wb > 0)
    np.testing.assert_allclose((g @ wb) * wb, 1.0, atol=1e-4)
    np.testing.assert_allclose((g / np.linalg.norm(g) @ wr) * wr, 1.0,
                               atol=1e-4)
    assert np.all(jb @ (wr @ jb) > 0)  # g_t^T d = 1 / alpha_t > 0.


def test_max_norm_clips_the_update():
  jac = RNG.normal(size=(BATCH, 4, 10)) * np.array([0.1, 1, 10, 100, 1, 1])[
      :, None, None]
  w_free, gram = _weights(jac, max_norm=0.0)
  w, _ = _weights(jac, max_norm=1.0)
  for g, wf, wb in zip(gram, w_free, w):
    free_norm = np.sqrt(wf @ g @ wf)
    np.testing.assert_allclose(np.sqrt(wb @ g @ wb), min(1.0, free_norm),
                               rtol=1e-5)
    np.testing.assert_allclose(wb, wf * min(1.0, 1.0 / free_norm), rtol=1e-5)


def test_update_weights_every_holds_weights_in_state():
  agg = aggregation.get("nash_mtl", update_weights_every=3, max_norm=0.0)
  step = jax.jit(agg.update)
  grads = [{"w": jnp.asarray(RNG.normal(size=(3, 5)), jnp.float32)}
           for _ in range(4)]
  state = agg.init(3)
  alphas = []
  for i, g in enumerate(grads):
    d, state = step(g, state, step=jnp.int32(i), key=jax.random.key(i))
    alphas.append(np.asarray(state.alpha, np.float64))
    np.testing.assert_allclose(d["w"], alphas[-1] @ np.asarray(g["w"]),
                               rtol=1e-5, atol=1e-6)
  assert int(state.count) == 4
  np.testing.assert_array_equal(alphas[1], alphas[0])
  np.testing.assert_array_equal(alphas[2], alphas[0])
  assert np.abs(alphas[3] - alphas[0]).max() > 1e-3
  for i in (0, 3):  # Recomputed on the gradients of that step.
    jb = np.asarray(grads[i]["w"], np.float64)
    np.testing.assert_allclose((jb @ jb.T @ alphas[i]) * alphas[i], 1.0,
                               atol=1e-4)


@pytest.mark.parametrize("hparams,name", [
    (dict(max_norm=-1.0), "max_norm"),
    (dict(update_weights_every=0), "update_weights_every"),
    (dict(update_weights_every=1.5), "update_weights_every"),
    (dict(reg_eps=0.0), "reg_eps"), (dict(norm_eps=0.0), "norm_eps"),
    (dict(iterations=0), "iterations")])
def test_out_of_domain_hyperparameters_raise(hparams, name):
  with pytest.raises(ValueError, match=name):
    aggregation.get("nash_mtl", **hparams)


# Regression: on the toy benchmark's Pareto set the two task gradients are
# anti-parallel to float32 precision (Gramian eigenvalues -4e-9 and 0.69).
# The weights ran away to 5e19 and the update norm to 3.7e13 despite
# max_norm = 1, which wrecked Adam's second moment.
REPRO_JAC = np.array([[-0.19899285, -0.00027255394],
                      [0.8087746, 0.0011050203]], np.float32)
BOUND = np.sqrt(2 / 1e-8) * (1 + 1e-5)  # ||alpha|| <= sqrt(T / reg_eps).


def _update(jac, **hparams):
  """(d, w, alpha) with alpha scaled to the normalised Gramian's solution
  (sqrt(||G||_F) alpha, floored like the solver), which the ridge bounds."""
  d, w, state = helpers.update("nash_mtl", jac, **hparams)
  jac32 = np.asarray(jac, np.float32)
  gram = (jac32 @ jac32.T).astype(np.float64)
  scale = max(np.linalg.norm(gram), 1e-20)
  return d, w, np.asarray(state.alpha, np.float64) * np.sqrt(scale)


def test_anti_parallel_to_float32_precision_is_clipped():
  d, w, alpha = _update(REPRO_JAC)
  assert np.all(np.isfinite(d)) and np.all(np.isfinite(alpha))
  assert np.linalg.norm(d) <= 1.0 + 1e-5
  assert np.linalg.norm(w @ REPRO_JAC.astype(np.float64)) <= 1.0 + 1e-5
  assert np.all(alpha > 0) and np.linalg.norm(alpha) <= BOUND


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e15])
def test_anti_parallel_gradients_at_every_scale(scale):
  base = RNG.normal(size=5)
  jac = scale * np.stack([base, -0.37 * base])
  for max_norm in (1.0, 0.0):
    d, w, alpha = _update(jac, max_norm=max_norm)
    assert np.all(np.isfinite(d)) and np.all(np.isfinite(w))
    assert np.all(alpha > 0) and np.linalg.norm(alpha) <= BOUND
    if max_norm:
      assert np.linalg.norm(d) <= 1.0 + 1e-5


def test_rank_one_gramian_with_negative_rounding_eigenvalue():
  grams, jacs = helpers.rank_one_gramians_with_negative_eigenvalue()
  w = np.asarray(_weights_fn()(jnp.asarray(grams)), np.float64)
  alpha = np.asarray(_weights_fn(max_norm=0.0)(jnp.asarray(grams)),
                     np.float64)
  assert np.all(np.isfinite(w)) and np.all(np.isfinite(alpha))
  assert np.all(alpha > 0)
  assert np.all(np.linalg.norm(alpha, axis=1) <= np.sqrt(3 / 1e-8))
  assert np.all(np.abs(np.sum(w * jacs, axis=1)) <= 1.0 + 1e-5)


def _bargaining_solution(gram):
  """Positive solution of G alpha = 1 / alpha (float64 numpy): damped Newton
  on the strictly convex 1/2 a^T G a - sum_t log a_t."""
  a = 1.0 / np.sqrt(np.diag(gram))
  f = lambda x: 0.5 * x @ gram @ x - np.sum(np.log(x))
  for _ in range(200):
    grad = gram @ a - 1.0 / a
    step = np.linalg.solve(gram + np.diag(1.0 / a**2), grad)
    t = 1.0
    while np.any(a - t * step <= 0) or f(a - t * step) > f(a):
      t *= 0.5
    a = a - t * step
  np.testing.assert_allclose(gram @ a, 1.0 / a, rtol=1e-10)
  return a


@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0])
def test_default_is_the_raw_bargaining_solution_as_in_the_authors_code(scale):
  # The authors' code solves on G / ||G||_F but its constraint
  # alpha_t * s * (G / s alpha)_t >= 1 scales the normalisation back out:
  # the weights solve (G alpha)_t = 1 / alpha_t for the raw G.
  jac = RNG.normal(size=(BATCH, 4, 10)) + RNG.normal(size=(BATCH, 1, 10))
  jac = scale * jac
  w, gram = _weights(jac, max_norm=0.0)
  for g, wb in zip(gram, w):
    expected = _bargaining_solution(g)
    np.testing.assert_allclose(wb, expected, rtol=2e-4)
    # The update norm is sqrt(alpha^T G alpha) = sqrt(T), whatever the scale.
    np.testing.assert_allclose(np.sqrt(wb @ g @ wb), 2.0, rtol=2e-4)
  # homogeneous=True: sqrt(||G||_F) times the raw solution.
  wh, _ = _weights(jac, max_norm=0.0, homogeneous=True)
  for g, wb in zip(gram, wh):
    np.testing.assert_allclose(
        wb, np.sqrt(np.linalg.norm(g)) * _bargaining_solution(g), rtol=2e-4)


def test_scaled_gradients_are_clipped_like_the_authors_code():
  # With max_norm = 1 (their clip_grad_norm_ default) the update of 0.01 *
  # J is the raw bargaining update sqrt(T) long, clipped to norm 1.
  jac = 0.01 * (RNG.normal(size=(BATCH, 4, 10)) + RNG.normal(size=(BATCH, 1, 10)))
  w, gram = _weights(jac, max_norm=1.0)
  for g, wb in zip(gram, w):
    expected = _bargaining_solution(g) / 2.0  # ||J^T alpha|| = sqrt(4).
    np.testing.assert_allclose(wb, expected, rtol=2e-4)
