"""The optimizer's learning-rate schedules."""

import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.train import optimizer
from mtl_jax.validators import InvalidValue


def _rates(config, steps):
  """The step sizes SGD takes on a unit gradient: the schedule's values."""
  tx = optimizer.build(dict(name="sgd", learning_rate=0.3, **config), steps)
  params = {"shared": {"w": jnp.zeros(())}, "tasks": {"t": {"w": jnp.zeros(())}}}
  grads = {"shared": {"w": jnp.ones(())}, "tasks": {"t": {"w": jnp.ones(())}}}
  state, rates = tx.init(params), []
  for _ in range(steps):
    updates, state = tx.update(grads, state, params)
    rates.append(-float(updates["shared"]["w"]))
  return np.array(rates)


def test_step_schedule_is_pytorch_steplr():
  """StepLR: lr * factor ** floor(step / every) (the NYUv2 protocol halves it)."""
  rates = _rates(dict(schedule="step", decay_every=4, decay_factor=0.5), 10)
  expected = 0.3 * 0.5 ** np.floor(np.arange(10) / 4)
  np.testing.assert_allclose(rates, expected, rtol=1e-6)


def test_step_schedule_needs_a_period():
  with pytest.raises(InvalidValue, match="optimizer.decay_every"):
    optimizer.build(dict(name="sgd", learning_rate=0.1, schedule="step"), 10)
  with pytest.raises(InvalidValue, match="optimizer.decay_factor"):
    optimizer.build(dict(name="sgd", learning_rate=0.1, schedule="step",
                         decay_every=2, decay_factor=0.0), 10)


def test_adam_l2_is_pytorch_adam_with_weight_decay():
  """PyTorch's Adam(weight_decay=wd): g + wd * p enters the moments (first
  step of Adam: lr * sign of that gradient, bias-corrected)."""
  tx = optimizer.build(dict(name="adam_l2", learning_rate=0.1, weight_decay=0.5), 10)
  params = {"shared": {"w": jnp.array([2.0, -4.0])}, "tasks": {}}
  grads = {"shared": {"w": jnp.array([-0.5, 1.0])}, "tasks": {}}
  updates, _ = tx.update(grads, tx.init(params), params)
  g = np.array([-0.5, 1.0]) + 0.5 * np.array([2.0, -4.0])  # [0.5, -1.0]
  np.testing.assert_allclose(updates["shared"]["w"], -0.1 * g / (np.abs(g) + 1e-8),
                             rtol=1e-5)
