"""Conformance suite run over every registered weighting method."""

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

import mtl_jax.weighting as weighting
from weighting_testlib import build, extras_for, gramian_of, make

NAMES = weighting.names()
RANDOM = {"rlw"}  # weights drawn from the key, independent of the losses

# Three consecutive steps of losses and per-task gradients (3 tasks, dim 4).
LOSSES = np.array([[0.9, 2.5, 0.3], [0.7, 2.4, 0.25], [0.65, 2.0, 0.24]],
                  np.float32)
GRADS = np.array([
    [[1.0, 0.5, 0.0, 0.2], [0.3, -1.0, 2.0, 0.0], [0.0, 0.1, 0.1, 0.4]],
    [[0.8, 0.4, 0.1, 0.2], [0.2, -0.9, 1.5, 0.1], [0.1, 0.1, 0.0, 0.3]],
    [[0.7, 0.5, 0.1, 0.1], [0.3, -0.8, 1.2, 0.0], [0.0, 0.2, 0.1, 0.3]],
], np.float32)
GRAMIANS = np.stack([np.asarray(gramian_of(g)) for g in GRADS])


def _run(method, update, state, losses_seq, gramians_seq, start=0):
  weights = []
  for i, (losses, gram) in enumerate(zip(losses_seq, gramians_seq)):
    w, state = update(jnp.asarray(losses), state,
                      **extras_for(method, start + i, jnp.asarray(gram)))
    weights.append(w)
  return jnp.stack(weights), state


def _assert_tree_close(a, b, **kw):
  la, ta = jax.tree.flatten(a)
  lb, tb = jax.tree.flatten(b)
  assert ta == tb
  for x, y in zip(la, lb):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


def _stress_cases():
  ones = np.ones((3, 4), np.float32)
  dup = np.array([[1.0, 2.0, 0.0, 1.0]] * 3, np.float32)
  return {
      "zero": (np.zeros(3), np.zeros((3, 4))),
      "tiny": (np.full(3, 1e-30), ones * 1e-30),
      "huge": (np.full(3, 1e15), ones * 1e15),
      "duplicated": (np.full(3, 0.7), dup),
      "mixed": (np.array([0.0, 1e-30, 1e15]),
                np.stack([np.zeros(4), np.full(4, 1e-30), np.full(4, 1e15)])),
  }


@pytest.mark.parametrize("name", NAMES)
def test_jit_matches_eager_and_stress_inputs_stay_finite(name):
  method, update = build(name, 3)
  # jit == eager over three consecutive updates (weights and state).
  state0 = method.init(3)
  w_eager, s_eager = _run(method, method.update, state0, LOSSES, GRAMIANS)
  w_jit, s_jit = _run(method, update, state0, LOSSES, GRAMIANS)
  _assert_tree_close(w_eager, w_jit, rtol=1e-5, atol=1e-7)
  _assert_tree_close(s_eager, s_jit, rtol=1e-5, atol=1e-7)
  assert w_jit.shape == (3, 3)
  # Zero, tiny, huge, duplicated and mixed losses/gradients, several updates,
  # both from a fresh state and from one that has seen ordinary losses.
  for case, (losses, grads) in _stress_cases().items():
    gram = np.asarray(gramian_of(grads))
    for start in (state0, s_jit):
      weights, state = _run(method, update, start, [losses] * 4, [gram] * 4)
      assert weights.shape == (4, 3), case
      assert np.all(np.isfinite(weights)), (case, weights)
      assert np.all(np.asarray(weights) >= 0), (case, weights)
      for leaf in jax.tree.leaves(state):
        assert np.all(np.isfinite(np.asarray(leaf))), (case, state)


@pytest.mark.parametrize("name", NAMES)
def test_single_task(name):
  method, update = build(name, 1)
  state = method.init(1)
  for step, loss in enumerate([2.0, 1.0, 0.0, 1e15]):
    weights, state = update(jnp.array([loss]), state,
                            **extras_for(method, step, jnp.array([[loss]])))
    assert weights.shape == (1,)
    assert np.all(np.isfinite(weights)) and float(weights[0]) >= 0


@pytest.mark.parametrize("name", NAMES)
def test_permuting_tasks_permutes_weights(name):
  perm = np.array([2, 0, 1])
  method, update = build(name, 3)
  weights, _ = _run(method, update, method.init(3), LOSSES, GRAMIANS)
  if name in RANDOM:
    # The weights are drawn from the key alone: permuting the losses leaves
    # them unchanged for the same keys, i.e. their law does not depend on the
    # task order (test_rlw.py checks that each task's mean weight is 1).
    permuted, _ = _run(method, update, method.init(3), LOSSES[:, perm],
                       GRAMIANS)
    np.testing.assert_array_equal(weights, permuted)
    return
  method_p, update_p = build(name, 3, tuple(perm) if name == "fixed" else None)
  gram_p = GRAMIANS[:, perm][:, :, perm]
  permuted, _ = _run(method_p, update_p, method_p.init(3), LOSSES[:, perm],
                     gram_p)
  np.testing.assert_allclose(permuted, weights[:, perm], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_state_survives_checkpoint_round_trip(name, tmp_path):
  method, update = build(name, 3)
  _, state = _run(method, update, method.init(3), LOSSES[:2], GRAMIANS[:2])
  tree = {"weighting": state, "step": jnp.int32(2)}
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(tmp_path / "ckpt", tree)
    ckpt.wait_until_finished()
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
    restored = ckpt.restore(tmp_path / "ckpt", target)["weighting"]
  assert type(restored) is type(state)
  _assert_tree_close(restored, state, rtol=0, atol=0)
  later = [LOSSES[2], LOSSES[0]]
  w_a, s_a = _run(method, update, state, later, GRAMIANS[1:], start=2)
  w_b, s_b = _run(method, update, restored, later, GRAMIANS[1:], start=2)
  np.testing.assert_array_equal(w_a, w_b)
  _assert_tree_close(s_a, s_b, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_number_of_losses_raises(name):
  method = make(name, 3)
  state = method.init(3)
  if jax.tree.leaves(state):  # stateful methods know their task count
    with pytest.raises(ValueError, match="3 tasks"):
      method.update(jnp.ones(4), state,
                    **extras_for(method, 0, jnp.eye(4)))
  with pytest.raises(ValueError, match="losses"):
    method.update(jnp.ones((3, 1)), state, **extras_for(method, 0, jnp.eye(3)))


@pytest.mark.parametrize("name", NAMES)
def test_init_rejects_bad_num_tasks(name):
  method = make(name, 3)
  with pytest.raises(ValueError, match="num_tasks"):
    method.init(0)


@pytest.mark.parametrize(
    "name", [n for n in NAMES if "gramian" in make(n, 3).needs])
def test_missing_or_misshapen_gramian_raises(name):
  method = make(name, 3)
  state = method.init(3)
  with pytest.raises(ValueError, match="gramian"):
    method.update(jnp.ones(3), state, step=0, key=jax.random.key(0))
  with pytest.raises(ValueError, match=r"\(3, 3\)"):
    method.update(jnp.ones(3), state, gramian=jnp.eye(2))


def test_needs_gramian_exactly_where_used():
  needing = {n for n in NAMES if "gramian" in make(n, 3).needs}
  assert needing == {"gradnorm", "db_mtl_norms", "excess_mtl_norms"}


def test_unknown_name_lists_valid_names():
  with pytest.raises(ValueError) as info:
    weighting.get("nope")
  message = str(info.value)
  assert "'nope'" in message
  for name in NAMES:
    assert name in message
  with pytest.raises(ValueError, match="Did you mean 'famo'"):
    weighting.get("famoo")


def test_registry_lists_every_method():
  assert set(NAMES) == {
      "equal", "fixed", "uncertainty", "dwa", "rlw", "gls", "scale_invariant",
      "imtl_l", "gradnorm", "famo", "stch", "db_mtl_norms",
      "excess_mtl_norms", "task_exponent"}
