"""Mixed precision: bf16 compute, float32 parameters, statistics and methods."""

import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mtl_jax import settings
from mtl_jax.train.step import (make_encode_decode, make_eval_step, make_forward,
                                make_train_step)
from tests.train import helpers as h

_OPS = re.compile(r"stablehlo\.(dot_general|convolution).*: \((tensor<[^>]*>), "
                  r"(tensor<[^>]*>)\)")


def _element(tensor_type: str) -> str:
  return tensor_type[:-1].split("<")[-1].split("x")[-1]  # tensor<8x64xbf16> -> bf16


def _operand_types(fn, *args) -> list[tuple[str, str]]:
  """``(op, 'lhs,rhs' element types)`` of every matmul/conv in ``fn``'s HLO."""
  text = jax.jit(fn).lower(*args).as_text()
  return [(m[1], f"{_element(m[2])},{_element(m[3])}") for m in _OPS.finditer(text)]


def test_forward_runs_matmuls_and_convolutions_in_bf16():
  """Every conv and dense layer, including those after batch norm."""
  p, _, _, state = h.setup(trunk="cnn", batch_norm=True)
  args = (state.params, state.rest, h.batch(0))
  bf16 = _operand_types(make_forward(p.graphdef, h.TASKS, compute_dtype="bfloat16"), *args)
  f32 = _operand_types(make_forward(p.graphdef, h.TASKS), *args)
  assert {op for op, _ in bf16} == {"dot_general", "convolution"}
  assert len(bf16) == len(f32) >= 4
  assert {types for _, types in bf16} == {"bf16,bf16"}, bf16
  assert {types for _, types in f32} == {"f32,f32"}, f32


def test_train_step_convolutions_are_bf16_forward_and_backward():
  p, method, tx, state = h.setup(trunk="cnn", batch_norm=True)
  step = make_train_step(p.graphdef, h.TASKS, method, tx, compute_dtype="bfloat16")
  convs = [t for op, t in _operand_types(step, state, h.batch(0)) if op == "convolution"]
  assert len(convs) >= 2 and set(convs) == {"bf16,bf16"}, convs


def _run(engine, compute_dtype, steps=2, accumulation_steps=1):
  agg = None if engine == "weighted" else h.MEAN
  p, method, tx, state = h.setup(aggregator=agg, engine=engine, trunk="cnn",
                                 batch_norm=True, lr=0.1)
  step = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx,
                                 compute_dtype=compute_dtype,
                                 accumulation_steps=accumulation_steps))
  history = []
  for i in range(steps):
    state, metrics = step(state, h.batch(i))
    history.append(metrics)
  return state, history


def _dtypes(tree) -> set:
  return {str(x.dtype) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}


@pytest.mark.parametrize("engine,accumulation_steps", [
    ("weighted", 1), ("jacobian", 1), ("gramian", 1), ("representation", 1),
    ("jacobian", 2)])
def test_bf16_keeps_state_and_metrics_float32_and_tracks_float32(engine, accumulation_steps):
  state, history = _run(engine, "bfloat16", accumulation_steps=accumulation_steps)
  for part in (state.params, state.opt_state, state.rest, state.weighting_state,
               state.aggregation_state, state.gramian, state.agg_weights):
    assert _dtypes(part) <= {"float32"}
  assert _dtypes(state.rest) == {"float32"}  # batch-norm statistics
  metrics = history[-1]
  for key in ("losses", "weights", "total_loss", "grad_norm") + (
      () if engine == "weighted" else ("gramian", "agg_weights")):
    assert metrics[key].dtype == jnp.float32, key
  # bf16 keeps 8 significant bits (relative spacing 2^-8 = 0.4%); a few
  # roundings in each layer move these O(1) losses by about 1%, while a
  # wrong cast or scale moves them by O(1). Hence 3% per step, 2 steps.
  _, reference = _run(engine, "float32", accumulation_steps=accumulation_steps)
  for m, r in zip(history, reference):
    np.testing.assert_allclose(m["losses"], r["losses"], rtol=3e-2)
    assert np.all(np.isfinite(m["grad_norm"]))
  np.testing.assert_allclose(history[0]["grad_norm"], reference[0]["grad_norm"], rtol=5e-2)


def test_representation_is_float32_at_the_encode_boundary():
  p, _, _, state = h.setup(trunk="cnn", batch_norm=True)
  encode, decode = make_encode_decode(p.graphdef, h.TASKS, compute_dtype="bfloat16")
  z, _ = encode(state.params["shared"], state.params, state.rest, h.batch(0))
  assert z.dtype == jnp.float32
  heads = {"tasks": state.params["tasks"]}
  types = _operand_types(lambda z: decode(z, heads, state.params, state.rest, h.batch(0)), z)
  assert types and {t for _, t in types} == {"bf16,bf16"}


def test_batch_norm_running_stats_keep_float32_resolution():
  """The running average moves by momentum * (old difference), even below bf16's.

  Running statistics 1 and 1 + 2^-10 are the same number in bf16; a forward
  that rounded them would return the same new statistics for both.
  """
  p, _, _, state = h.setup(trunk="cnn", batch_norm=True)
  forward = jax.jit(make_forward(p.graphdef, h.TASKS, compute_dtype="bfloat16"))
  delta = 2.0 ** -10
  rest = jax.tree.map(jnp.ones_like, state.rest)
  nudged = jax.tree.map(lambda x: x + delta, rest)
  new = forward(state.params, rest, h.batch(0))[1][1]
  new_nudged = forward(state.params, nudged, h.batch(0))[1][1]
  for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(new_nudged)):
    assert a.dtype == jnp.float32
    np.testing.assert_allclose(b - a, 0.99 * delta, rtol=1e-3)  # BatchNorm momentum


def test_updates_below_bf16_resolution_are_kept():
  """Float32 master weights: a tiny step changes them (bf16 ones would not).

  About half the first-layer kernel gets a gradient (ReLU units alive on
  the batch); with a learning rate of 1e-5 the changes are ~1e-3 of a bf16
  spacing.
  """
  p, method, tx, state = h.setup(lr=1e-5)
  step = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx, compute_dtype="bfloat16"))
  new_state, _ = step(state, h.batch(0))
  kernel = lambda s: jnp.asarray(s.params["shared"]["layers"][0]["kernel"])
  changed = np.asarray(kernel(new_state) != kernel(state))
  assert changed.mean() > 0.25
  bf16 = lambda s: kernel(s).astype(jnp.bfloat16)
  assert np.asarray(bf16(new_state) != bf16(state)).mean() < 0.02


def test_eval_step_in_bf16_is_float32_and_close():
  p, _, _, state = h.setup(trunk="cnn", batch_norm=True)
  outs = [jax.jit(make_eval_step(p.graphdef, h.TASKS, compute_dtype=d))(
      state.params, state.rest, h.batch(0)) for d in ("float32", "bfloat16")]
  assert _dtypes(outs[1]["loss_sum"]) == {"float32"}
  np.testing.assert_allclose(outs[1]["loss_sum"], outs[0]["loss_sum"], rtol=3e-2)


def test_bad_compute_dtype_names_the_key_and_the_valid_values():
  p, method, tx, _ = h.setup()
  message = r"train.compute_dtype must be one of \['float32', 'bfloat16', 'float16'\]"
  with pytest.raises(ValueError, match=message + ", got 'bf16'"):
    make_train_step(p.graphdef, h.TASKS, method, tx, compute_dtype="bf16")
  with pytest.raises(ValueError, match=message):
    make_forward(p.graphdef, h.TASKS, compute_dtype=jnp.int8)
  config = ml_collections.ConfigDict(dict(num_steps=1, batch_size=8, compute_dtype="half"))
  with pytest.raises(ValueError, match=message + ", got 'half'"):
    settings.parse_train(config)
  config.compute_dtype = "bfloat16"
  settings.parse_train(config)
