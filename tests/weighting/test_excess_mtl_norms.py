"""Tests of ExcessMTL."""

import jax.numpy as jnp
import numpy as np
import pytest

import mtl_jax.weighting as weighting
from weighting_testlib import scan_updates


def test_hand_computed_three_updates():
  step = 0.5
  sq_norms_seq = np.array([[1.0, 4.0, 0.5], [2.0, 1.0, 0.5], [0.5, 3.0, 1.0]])
  method = weighting.get("excess_mtl_norms", step_size=step)
  state = method.init(3)
  w, acc, initial = np.ones(3), np.zeros(3), None
  for sq in sq_norms_seq:
    gramian = jnp.asarray(np.diag(sq), jnp.float32)
    weights, state = method.update(jnp.ones(3), state, gramian=gramian)
    acc = acc + sq
    risk = sq / np.sqrt(acc + 1e-7)
    if initial is None:
      initial = risk
    else:
      w = w * np.exp(step * risk / initial)
      w = 3 * w / w.sum()
    np.testing.assert_allclose(weights, w, rtol=1e-5)


def test_task_with_larger_excess_risk_gains_weight():
  # Task 0's gradient keeps its size, task 1's shrinks: task 1 nears its
  # optimum (small excess risk), so weight moves to task 0.
  n = 30
  sq = np.stack([np.ones(n), 0.8 ** np.arange(n)], axis=1)
  weights, _ = scan_updates(weighting.get("excess_mtl_norms", step_size=0.1),
                            np.ones((n, 2)),
                            np.stack([np.diag(s) for s in sq]))
  np.testing.assert_allclose(np.sum(weights, axis=1), 2.0, rtol=1e-5)
  assert np.all(np.diff(weights[1:, 0]) > 0)
  assert weights[-1, 0] > 1.2


def test_equal_relative_risks_keep_weights_equal():
  # Gradients of different sizes but the same evolution: equal rhat_t.
  n = 10
  scale = np.array([1.0, 100.0, 1e-4])
  sq = (0.9 ** np.arange(n))[:, None] * scale
  weights, _ = scan_updates(weighting.get("excess_mtl_norms"), np.ones((n, 3)),
                            np.stack([np.diag(s) for s in sq]))
  np.testing.assert_allclose(weights, 1.0, rtol=1e-4)


def test_matches_per_coordinate_adagrad_when_gradient_profiles_are_fixed():
  # The paper's estimate uses per-coordinate squared gradients; with each
  # task's gradient along a fixed (uneven) direction the Gramian-only
  # approximation gives the same weights.
  rng = np.random.default_rng(0)
  directions = rng.normal(size=(3, 5)) * [[1.0, 5.0, 0.1, 2.0, 0.5]]
  sizes = np.exp(rng.normal(size=(6, 3)))
  step = 0.3
  w, acc, initial = np.ones(3), np.zeros((3, 5)), None
  method = weighting.get("excess_mtl_norms", step_size=step)
  state = method.init(3)
  for size in sizes:
    grads = size[:, None] * directions
    acc = acc + grads ** 2
    risk = np.sum(grads ** 2 / np.sqrt(acc + 1e-7), axis=1)
    if initial is None:
      initial = risk
    else:
      w = w * np.exp(step * risk / initial)
      w = 3 * w / w.sum()
    weights, state = method.update(
        jnp.ones(3), state, gramian=jnp.asarray(grads @ grads.T, jnp.float32))
    np.testing.assert_allclose(weights, w, rtol=1e-4)


@pytest.mark.parametrize("kwargs, name", [
    ({"step_size": 0.0}, "step_size"),
    ({"adagrad_eps": -1.0}, "adagrad_eps"),
])
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f"'{name}'"):
    weighting.get("excess_mtl_norms", **kwargs)
