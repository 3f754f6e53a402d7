"""The contract every registered aggregation method must satisfy.

Parametrised over ``mtl_jax.aggregation.names()``. A method whose module file
does not exist yet is skipped (only that case: any other import error fails).
Each method is jitted once per task count and the compiled function is reused
for every stress input of that shape.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mtl_jax import aggregation
from mtl_jax.aggregation.base import combine, gramian

NAMES = aggregation.names()
T = 3
KEY = jax.random.key(42)


def _build(name):
  try:
    return aggregation.get(name)
  except ModuleNotFoundError as err:
    if (err.name or "").startswith("mtl_jax.aggregation."):
      pytest.skip(f"{name}: module {err.name} not written yet")
    raise


def _grads(seed: int, num_tasks: int = T):
  """A two-leaf pytree: a [T, 3, 2] matrix and a [T, 4] vector."""
  rng = np.random.default_rng(seed)
  return {
      "kernel": jnp.asarray(rng.normal(size=(num_tasks, 3, 2)), jnp.float32),
      "bias": jnp.asarray(rng.normal(size=(num_tasks, 4)), jnp.float32),
  }


def _extras(step: int, num_tasks: int = T, key=KEY):
  losses = jnp.linspace(0.5, 2.0, num_tasks, dtype=jnp.float32)
  # ``unused`` checks that every method ignores extras it does not know.
  return dict(step=jnp.int32(step), key=jax.random.fold_in(key, step),
              losses=losses, unused=jnp.zeros((2,), jnp.float32))


def _one_task(grads):
  return jax.tree.map(lambda x: jnp.zeros_like(x[0]), grads)


def _run(method, grads, state, extras):
  """Direction and state from ``update``; weights and state from ``weights``."""
  direction, new_state = method.update(grads, state, **extras)
  if method.weights is None:
    return direction, new_state, None, None
  w, w_state = method.weights(gramian(grads), state, **extras)
  return direction, new_state, w, w_state


@functools.lru_cache(maxsize=None)
def _harness(name):
  method = _build(name)
  return method, jax.jit(functools.partial(_run, method))


def _finite(tree) -> bool:
  return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree)
             if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact))


def _assert_close(a, b, rtol=1e-4, atol=1e-5):
  jax.tree.map(
      lambda x, y: np.testing.assert_allclose(
          np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol,
          atol=atol), a, b)


def _stress_inputs():
  g = _grads(0)

  def rows(fn):
    return jax.tree.map(fn, g)

  return {
      "zero": rows(jnp.zeros_like),
      "tiny": rows(lambda x: x * 1e-30),
      "huge": rows(lambda x: x * 1e15),
      "duplicated": rows(lambda x: jnp.broadcast_to(x[:1], x.shape)),
      "opposite": rows(lambda x: jnp.stack([x[0], -x[0], x[1]])),
  }


def test_unknown_name_lists_valid_names():
  with pytest.raises(ValueError) as err:
    aggregation.get("mgdaa")
  message = str(err.value)
  assert "Valid names" in message
  for name in NAMES:
    assert name in message
  assert "'mgda'" in message  # The close match is suggested.


@pytest.mark.parametrize("name", NAMES)
def test_jit_matches_eager(name):
  method, jitted = _harness(name)
  grads = _grads(1)
  state = method.init(T, _one_task(grads))
  extras = _extras(0)
  eager = method.update(grads, state, **extras)
  direction, new_state, _, _ = jitted(grads, state, extras)
  _assert_close(eager, (direction, new_state))


@pytest.mark.parametrize("name", NAMES)
def test_finite_and_shaped_on_stress_inputs(name):
  method, jitted = _harness(name)
  cases = dict(_stress_inputs())
  cases["single_task"] = _grads(2, num_tasks=1)
  for case, grads in cases.items():
    t = jax.tree.leaves(grads)[0].shape[0]
    state = method.init(t, _one_task(grads))
    direction, new_state, w, w_state = jitted(grads, state, _extras(0, t))
    assert jax.tree.structure(direction) == jax.tree.structure(
        _one_task(grads)), case
    for d, g in zip(jax.tree.leaves(direction), jax.tree.leaves(grads)):
      assert d.shape == g.shape[1:] and d.dtype == g.dtype, case
    assert _finite(direction), f"{name}: non-finite direction on {case}"
    assert _finite(new_state), f"{name}: non-finite state on {case}"
    assert jax.tree.structure(new_state) == jax.tree.structure(state), case
    if w is not None:
      assert w.shape == (t,), case
      assert _finite((w, w_state)), f"{name}: non-finite weights on {case}"


@pytest.mark.parametrize("name", NAMES)
def test_weights_permute_with_tasks(name):
  method, jitted = _harness(name)
  grads = _grads(3)
  state = method.init(T, _one_task(grads))
  extras = _extras(0)
  d, _, w, _ = jitted(grads, state, extras)
  d_other_key, *_ = jitted(grads, state, _extras(0, key=jax.random.key(7)))
  if not np.allclose(jax.tree.leaves(d)[0], jax.tree.leaves(d_other_key)[0]):
    pytest.skip(f"{name} is key-dependent: permutations are tested for T=2 "
                "in its own tests")
  perm = np.array([2, 0, 1])
  grads_p = jax.tree.map(lambda x: x[perm], grads)
  extras_p = dict(extras, losses=extras["losses"][perm])
  d_p, _, w_p, _ = jitted(grads_p, state, extras_p)
  _assert_close(d_p, d, rtol=1e-3, atol=1e-4)
  if w is not None:
    _assert_close(w_p, w[perm], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_update_is_the_weighted_combination(name):
  method, jitted = _harness(name)
  if method.weights is None:
    pytest.skip(f"{name} has no weights (needs the full Jacobian)")
  grads = _grads(4)
  state = method.init(T, _one_task(grads))
  direction, new_state, w, w_state = jitted(grads, state, _extras(0))
  _assert_close(direction, combine(w, grads))
  _assert_close(new_state, w_state)


@pytest.mark.parametrize("name", NAMES)
def test_consecutive_updates_stay_finite(name):
  method, jitted = _harness(name)
  state = method.init(T, _one_task(_grads(0)))
  for step in range(5):
    grads = _grads(10 + step)
    direction, state, w, _ = jitted(grads, state, _extras(step))
    assert _finite((direction, state, w)), f"{name}: step {step}"


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
  """States after one update of every available method, saved and restored.

  One orbax checkpoint holds all methods' states (fast); returns
  ``{name: (state, restored_state)}``.
  """
  states = {}
  for name in NAMES:
    try:
      method, jitted = _harness(name)
    except pytest.skip.Exception:
      continue
    grads = _grads(5)
    state = method.init(T, _one_task(grads))
    _, state, _, _ = jitted(grads, state, _extras(0))
    states[name] = state
  tree = {"states": states, "marker": jnp.int32(1)}
  path = tmp_path_factory.mktemp("aggregation_ckpt") / "state"
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(path, tree)
  checkpointer.wait_until_finished()
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
  restored = checkpointer.restore(path, abstract)
  return {name: (states[name], restored["states"][name]) for name in states}


@pytest.mark.parametrize("name", NAMES)
def test_state_survives_checkpoint(name, checkpointed):
  method, jitted = _harness(name)
  if name not in checkpointed:
    pytest.skip(f"{name} not available")
  state, restored = checkpointed[name]
  assert jax.tree.structure(restored) == jax.tree.structure(state)
  grads = _grads(6)
  expected = jitted(grads, state, _extras(1))
  got = jitted(grads, restored, _extras(1))
  jax.tree.map(np.testing.assert_array_equal, got, expected)
