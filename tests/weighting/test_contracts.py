"""The contract's shared pieces: stateless methods and the registries."""

import jax.numpy as jnp
import pytest

from mtl_jax import weighting
from mtl_jax.registry import Registry
from mtl_jax.weighting import base


def test_stateless_methods_check_num_tasks_and_losses():
  method = base.stateless(lambda losses, **extras: 2.0 * losses)
  state = method.init(2)
  assert state == weighting.EmptyState()
  weights, state = method.update(jnp.array([1, 3]), state, step=0, key=None)
  assert weights.dtype == jnp.float32 and weights.tolist() == [2.0, 6.0]
  with pytest.raises(ValueError, match="num_tasks must be a positive integer, got 0"):
    method.init(0)
  with pytest.raises(ValueError, match="losses must be a"):
    method.update(jnp.ones((2, 2)), state)


def test_registry_of_users_entries():
  registry = Registry("weighting method", "mtl_jax.weighting", {"equal": "equal:equal"})
  registry.register("mine", base.stateless)
  assert registry.names() == ("equal", "mine") and "mine" in registry
  registry.register("mine", weighting.get)  # registering again replaces it
  assert registry.lookup("mine") is weighting.get
  with pytest.raises(ValueError, match="'equal' is built in; register it with replace=True"):
    registry.register("equal", base.stateless)
  registry.register("equal", base.stateless, replace=True)
  assert registry.lookup("equal") is base.stateless
  with pytest.raises(ValueError, match=r"Unknown weighting method 'mne'\. Did you mean 'mine'\?"):
    registry.lookup("mne")

