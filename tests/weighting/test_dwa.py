"""Tests of dynamic weight average."""

import jax.numpy as jnp
import numpy as np
import pytest

import mtl_jax.weighting as weighting
from weighting_testlib import scan_updates

LOSSES = np.array([[1.0, 2.0, 4.0], [0.5, 1.9, 4.1], [0.4, 1.5, 4.0],
                   [0.35, 1.0, 3.0]])


def _softmax(x):
  e = np.exp(x - x.max())
  return e / e.sum()


def _run(method, losses_seq):
  state = method.init(losses_seq.shape[1])
  out = []
  for losses in losses_seq:
    weights, state = method.update(jnp.asarray(losses, jnp.float32), state)
    out.append(np.asarray(weights))
  return np.array(out)


def test_hand_computed_with_raw_previous_losses():
  temperature = 2.0
  weights = _run(weighting.get("dwa", temperature=temperature), LOSSES)
  np.testing.assert_array_equal(weights[:2], np.ones((2, 3)))
  for k in (2, 3):
    ratio = LOSSES[k - 1] / LOSSES[k - 2]
    np.testing.assert_allclose(weights[k], 3 * _softmax(ratio / temperature),
                               rtol=1e-5)


def test_hand_computed_with_ema():
  decay = 0.5
  weights = _run(weighting.get("dwa", temperature=1.0, ema_decay=decay),
                 LOSSES)
  m0 = LOSSES[0]
  m1 = decay * m0 + (1 - decay) * LOSSES[1]
  m2 = decay * m1 + (1 - decay) * LOSSES[2]
  np.testing.assert_allclose(weights[2], 3 * _softmax(m1 / m0), rtol=1e-5)
  np.testing.assert_allclose(weights[3], 3 * _softmax(m2 / m1), rtol=1e-5)


def test_weights_sum_to_k_and_slow_tasks_get_more():
  rng = np.random.default_rng(0)
  losses = np.exp(rng.normal(size=(30, 4)))
  weights, _ = scan_updates(weighting.get("dwa"), losses)
  np.testing.assert_allclose(np.sum(weights, axis=1), 4.0, rtol=1e-5)
  # At every step k >= 2 the order of weights is the order of L(k-1)/L(k-2).
  ratios = losses[1:-1] / losses[:-2]
  np.testing.assert_array_equal(np.argsort(weights[2:], axis=1),
                                np.argsort(ratios, axis=1))


def test_high_temperature_gives_equal_weights():
  weights = _run(weighting.get("dwa", temperature=1e6), LOSSES)
  np.testing.assert_allclose(weights, 1.0, atol=1e-5)


@pytest.mark.parametrize("kwargs, name", [
    ({"temperature": 0.0}, "temperature"),
    ({"ema_decay": 1.0}, "ema_decay"),
    ({"ema_decay": -0.1}, "ema_decay"),
    ({"eps": 0.0}, "eps"),
])
def test_bad_hyperparameters_raise(kwargs, name):
  with pytest.raises(ValueError, match=f"'{name}'"):
    weighting.get("dwa", **kwargs)
