"""Tests of GradNorm."""

import jax.numpy as jnp
import numpy as np
import pytest

import mtl_jax.weighting as weighting
from weighting_testlib import NumpyAdam, scan_updates


def test_hand_computed_three_updates():
  lr, alpha = 0.05, 1.5
  losses_seq = np.array([[1.0, 2.0, 0.5], [0.9, 1.0, 0.45], [0.8, 0.6, 0.5]])
  norms = np.array([1.0, 3.0, 0.5])
  gramian = jnp.asarray(np.diag(norms ** 2), jnp.float32)
  method = weighting.get("gradnorm", alpha=alpha, learning_rate=lr)
  state = method.init(3)
  adam, w = NumpyAdam(lr), np.ones(3)
  for losses in losses_seq:
    weights, state = method.update(jnp.asarray(losses, jnp.float32), state,
                                   gramian=gramian)
    np.testing.assert_allclose(weights, w, rtol=1e-5)
    rate = losses / losses_seq[0]
    r = rate / rate.mean()
    weighted = w * norms
    target = weighted.mean() * r ** alpha
    w = adam.step(w, np.sign(weighted - target) * norms)
    w = 3 * np.maximum(w, 1e-3) / np.maximum(w, 1e-3).sum()
    np.testing.assert_allclose(state.weights, w, rtol=1e-5)
  np.testing.assert_allclose(state.initial_losses, losses_seq[0])


def test_alpha_zero_equalises_weighted_gradient_norms():
  norms = np.array([1.0, 2.0])
  weights, states = scan_updates(
      weighting.get("gradnorm", alpha=0.0, learning_rate=0.01),
      np.ones((600, 2)), np.tile(np.diag(norms ** 2), (600, 1, 1)))
  np.testing.assert_allclose(np.sum(weights, axis=1), 2.0, rtol=1e-5)
  # Balanced when w_0 * 1 = w_1 * 2 with w_0 + w_1 = 2: w = (4/3, 2/3).
  np.testing.assert_allclose(states.weights[-1], [4 / 3, 2 / 3], atol=0.01)
  before = np.abs(np.diff(weights[0] * norms))
  after = np.abs(np.diff(weights[-1] * norms))
  assert after < 0.05 * before


def test_slower_task_gets_larger_weight():
  # Equal gradient norms; task 0's loss does not fall, task 1's halves.
  losses = np.ones((200, 2))
  losses[1:, 1] = 0.5
  _, states = scan_updates(weighting.get("gradnorm", alpha=1.0), losses,
                           np.tile(np.eye(2), (200, 1, 1)))
  # Target ratio of weighted norms: r^alpha = (1 / 0.75) / (0.5 / 0.75) = 2.
  np.testing.assert_allclose(states.weights[-1], [4 / 3, 2 / 3], atol=0.02)


@pytest.mark.parametrize("kwargs, name", [
    ({"alpha": -0.5}, "alpha"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"min_weight": 0.0}, "min_weight"),
])
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f"'{name}'"):
    weighting.get("gradnorm", **kwargs)


def test_softmax_parametrisation_as_libmtl_over_steps():
  # LibMTL: w = K softmax(s), s trained by Adam on L_grad(s) = sum_t
  # |w_t(s) n_t - target_t| with the target held constant; the gradient
  # w.r.t. s is taken here by central differences in float64.
  lr, alpha = 0.05, 1.5
  losses_seq = np.array([[1.0, 2.0, 0.5], [0.9, 1.0, 0.45], [0.8, 0.6, 0.5],
                         [0.7, 0.5, 0.5]])
  norms = np.array([1.0, 3.0, 0.5])
  gramian = jnp.asarray(np.diag(norms ** 2), jnp.float32)
  method = weighting.get("gradnorm", alpha=alpha, learning_rate=lr,
                         parametrization="softmax")
  state = method.init(3)
  adam, s = NumpyAdam(lr), np.zeros(3)
  w_of = lambda s: 3 * np.exp(s) / np.exp(s).sum()
  for losses in losses_seq:
    weights, state = method.update(jnp.asarray(losses, jnp.float32), state,
                                   gramian=gramian)
    np.testing.assert_allclose(weights, w_of(s), rtol=1e-5)
    rate = losses / losses_seq[0]
    r = rate / rate.mean()
    target = (w_of(s) * norms).mean() * r ** alpha
    l_grad = lambda x: np.abs(w_of(x) * norms - target).sum()
    h = 1e-6
    grad = np.array([(l_grad(s + h * e) - l_grad(s - h * e)) / (2 * h)
                     for e in np.eye(3)])
    s = adam.step(s, grad)
    np.testing.assert_allclose(state.logits, s, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(state.weights, w_of(s), rtol=1e-5)
  with pytest.raises(ValueError, match="parametrization"):
    weighting.get("gradnorm", parametrization="exp")
