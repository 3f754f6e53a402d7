"""Penalties: values and gradients against numpy, guarded derivatives, build()."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import penalties
from mtl_jax.penalties.base import as_matrices

RNG = np.random.default_rng(0)
W = RNG.normal(size=(3, 4, 2)).astype(np.float32)  # K=3 towers of a 4x2 layer


def _close(a, b, tol=1e-5):
  np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=tol, atol=tol)


def _value_and_grad(name, w):
  return jax.jit(jax.value_and_grad(penalties.get(name).apply))(jnp.asarray(w))


# Numpy references, written from the definitions (loops over tasks / pairs).

def _np_l2_to_mean(w):
  mean = w.mean(0)
  return sum(np.sum((wk - mean) ** 2) for wk in w), 2 * (w - mean)


def _np_pairwise_l2(w):
  value, grad = 0.0, np.zeros_like(w)
  for i, j in itertools.combinations(range(len(w)), 2):
    value += np.sum((w[i] - w[j]) ** 2)
    grad[i] += 2 * (w[i] - w[j])
    grad[j] += 2 * (w[j] - w[i])
  return value, grad


def _np_orthogonality(w):
  value, grad = 0.0, np.zeros_like(w)
  for i, j in itertools.combinations(range(len(w)), 2):
    value += np.sum((w[i].T @ w[j]) ** 2)
    grad[i] += 2 * w[j] @ w[j].T @ w[i]
    grad[j] += 2 * w[i] @ w[i].T @ w[j]
  return value, grad


def _np_l21(w):
  norms = np.sqrt(np.sum(w ** 2, axis=(0, 2)))  # one per input row
  return norms.sum(), w / norms[None, :, None]


def _np_trace_norm(w):
  m = w.reshape(len(w), -1)
  u, s, vh = np.linalg.svd(m, full_matrices=False)
  return s.sum(), (u @ vh).reshape(w.shape)


REFERENCES = {"l2_to_mean": _np_l2_to_mean, "pairwise_l2": _np_pairwise_l2,
              "orthogonality": _np_orthogonality, "l21": _np_l21,
              "trace_norm": _np_trace_norm}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_value_and_gradient_match_numpy(name):
  value, grad = _value_and_grad(name, W)
  ref_value, ref_grad = REFERENCES[name](W.astype(np.float64))
  _close(value, ref_value)
  _close(grad, ref_grad, 1e-4)


@pytest.mark.parametrize("name,w,expected", [
    ("l2_to_mean", [[1.0, 2.0], [3.0, 4.0]], 4.0),        # mean (2, 3): 2 + 2
    ("pairwise_l2", [[1.0, 2.0], [3.0, 4.0]], 8.0),       # ||(-2, -2)||^2
    ("trace_norm", [[3.0, 0.0], [0.0, 4.0]], 7.0),        # singular values 3, 4
    ("orthogonality", [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 2.0], [3.0, 4.0]]], 30.0),
    ("l21", [[3.0, 0.0], [4.0, 0.0]], 5.0),               # rows (3, 4) and (0, 0)
])
def test_hand_computed_values(name, w, expected):
  _close(penalties.get(name).apply(jnp.asarray(w)), expected)


def test_penalties_sum_over_the_leaves_of_a_pytree():
  tree = {"a": jnp.asarray(W), "b": [jnp.asarray(W[:, :2])]}
  for name in penalties.names():
    fn = penalties.get(name).apply
    _close(fn(tree), fn(tree["a"]) + fn(tree["b"][0]))
    _close(fn({}), 0.0)


def test_equal_towers_have_zero_distance_penalties():
  same = jnp.broadcast_to(jnp.asarray(np.round(W[0] * 4) / 4), W.shape)  # exact mean
  for name in ("l2_to_mean", "pairwise_l2"):
    value, grad = _value_and_grad(name, same)
    assert float(value) == 0.0 and not np.any(np.asarray(grad))


def test_trace_norm_gradient_at_a_zero_singular_value():
  """Rank 1: ||M||_* = ||a|| ||b|| and the gradient is a b^T / (||a|| ||b||)."""
  a, b = np.array([1.0, 2.0]), np.array([1.0, 2.0, 2.0])
  value, grad = _value_and_grad("trace_norm", np.outer(a, b).astype(np.float32))
  _close(value, np.sqrt(5.0) * 3.0)
  _close(grad, np.outer(a / np.sqrt(5.0), b / 3.0))
  # Forward mode uses the same derivative (custom JVP): d/dt ||M + t M||_* = ||M||_*.
  m = jnp.asarray(np.outer(a, b), jnp.float32)
  _close(jax.jvp(penalties.get("trace_norm").apply, (m,), (m,))[1], np.sqrt(5.0) * 3.0)


def test_trace_norm_gradient_at_repeated_and_all_zero_singular_values():
  m = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]], np.float32)  # s = (2, 2)
  value, grad = _value_and_grad("trace_norm", m)
  _close(value, 4.0)
  _close(grad, m / 2.0)  # U V^T
  value, grad = _value_and_grad("trace_norm", np.zeros((3, 4), np.float32))
  assert float(value) == 0.0
  assert np.all(np.isfinite(grad)) and not np.any(np.asarray(grad))


def test_l21_gradient_is_zero_not_nan_on_an_all_zero_group():
  w = np.zeros((2, 3, 1), np.float32)
  w[:, 0, 0] = (3.0, 4.0)  # group 0 has norm 5, groups 1 and 2 are zero
  value, grad = _value_and_grad("l21", w)
  _close(value, 5.0)
  expected = np.zeros_like(w)
  expected[:, 0, 0] = (0.6, 0.8)
  _close(grad, expected)


def test_as_matrices_groups_conv_taps_as_rows():
  assert as_matrices(jnp.zeros((2, 3, 3, 4, 5))).shape == (2, 36, 5)
  assert as_matrices(jnp.zeros((2, 7))).shape == (2, 7, 1)
  assert as_matrices(jnp.zeros((2,))).shape == (2, 1, 1)


def _params(k=3):
  """Parameters shaped like a soft-sharing model's: stacked kernels under cross."""
  kernels = [RNG.normal(size=(k, 4, 2)), RNG.normal(size=(k, 2, 2))]
  cross = {"towers": {"layers": {
      i: {"kernel": jnp.asarray(w, jnp.float32), "bias": jnp.ones((k, w.shape[-1]))}
      for i, w in enumerate(kernels)}}}
  tasks = {f"t{i}": {"out": {"kernel": jnp.ones((2, 1))}} for i in range(k)}
  return {"shared": {}, "tasks": tasks, "cross": cross}, kernels


def test_build_weights_the_penalties_of_the_stacked_kernels_only():
  params, kernels = _params()
  penalty = penalties.build({"l2_to_mean": 0.5, "trace_norm": 2.0})
  expected = sum(0.5 * _np_l2_to_mean(w)[0] + 2.0 * _np_trace_norm(w)[0]
                 for w in kernels)
  _close(penalty(params), expected)
  grads = jax.grad(penalty)(params)
  # Biases and task heads are not penalised.
  assert not np.any(np.asarray(grads["cross"]["towers"]["layers"][0]["bias"]))
  assert not any(np.any(np.asarray(g)) for g in jax.tree.leaves(grads["tasks"]))
  _close(grads["cross"]["towers"]["layers"][1]["kernel"],
         0.5 * _np_l2_to_mean(kernels[1])[1] + 2.0 * _np_trace_norm(kernels[1])[1], 1e-4)


def test_build_returns_none_when_there_is_nothing_to_add():
  assert penalties.build(None) is None
  assert penalties.build({}) is None
  assert penalties.build({"l21": 0.0}) is None


def test_build_errors_name_the_field():
  with pytest.raises(ValueError, match="l2_to_mean, orthogonality, pairwise_l2"):
    penalties.build({"trace": 1.0})
  with pytest.raises(ValueError, match=r"penalties\['l21'\].*-0.1"):
    penalties.build({"l21": -0.1})
  with pytest.raises(ValueError, match=r"penalties\['l21'\]"):
    penalties.build({"l21": "big"})
  with pytest.raises(ValueError, match="mapping"):
    penalties.build(["l21"])


def test_every_penalty_declares_the_parameters_it_reads():
  params, kernels = _params()
  for name in penalties.names():
    assert callable(penalties.get(name).select), name
  for name in REFERENCES:  # The soft-sharing ones read the stacked kernels.
    selected = penalties.get(name).select(params)
    assert [np.asarray(k).shape for k in selected] == [k.shape for k in kernels]


def test_build_entries_with_options():
  params, _ = _params()
  plain = penalties.build({"l2_to_mean": 0.5})
  as_mapping = penalties.build({"l2_to_mean": {"weight": 0.5}})
  _close(as_mapping(params), plain(params))
  assert penalties.build({"l21": {"weight": 0.0}}) is None
  with pytest.raises(ValueError, match=r"penalties\['l2_to_mean'\].*unknown option.*"
                     r"'scale'.*valid: none"):
    penalties.build({"l2_to_mean": {"weight": 0.5, "scale": 2.0}})
  with pytest.raises(ValueError, match=r"penalties\['dselect_entropy'\].*'gama'.*"
                     r"valid: \['gamma'\]"):
    penalties.build({"dselect_entropy": {"weight": 1.0, "gama": 2.0}})
  with pytest.raises(ValueError, match=r"penalties\['dselect_entropy'\].*'weight'"):
    penalties.build({"dselect_entropy": {"gamma": 2.0}})
  with pytest.raises(ValueError, match=r"penalties\['l21'\].*-1"):
    penalties.build({"l21": {"weight": -1}})


def test_penalty_on_a_model_without_stacked_towers_raises():
  penalty = penalties.build({"l2_to_mean": 1.0})
  with pytest.raises(ValueError, match="'l2_to_mean'.*stacked per-task tower kernels"
                     ".*Found shared: kernel"):
    penalty({"shared": {"kernel": jnp.ones((2, 2))}, "tasks": {"a": {}}, "cross": {}})
  params, _ = _params(k=3)
  params["tasks"] = {"a": {}, "b": {}}  # 2 tasks, but towers stacked for 3
  with pytest.raises(ValueError, match="leading task axis of size 2"):
    penalty(params)


def test_a_users_penalty_is_a_penalty_in_the_registry():
  try:
    penalties.register("l1_towers",
                       penalties.on_stacked_kernels(lambda w: jnp.sum(jnp.abs(w))))
    params, kernels = _params()
    value = penalties.build({"l1_towers": 2.0})(params)
    _close(value, 2.0 * sum(np.abs(k).sum() for k in kernels))
  finally:
    penalties.REGISTRY.registered.pop("l1_towers", None)
  with pytest.raises(ValueError, match="is built in"):
    penalties.register("l21", penalties.get("l21"))
