"""Gradient accumulation: M micro-batches give the whole-batch step.

Compared at ``highest`` matmul precision with SGD at learning rate 1 (so the
parameter change is the update direction itself) on a small MLP without
batch norm: the only differences left are float reassociation of sums
(~1e-7 relative), so 1e-6 is tight enough to catch any wrong scale (a
micro-batch mean instead of a global one, a missing count, a doubled pass).
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mtl_jax import aggregation, settings, weighting
from mtl_jax.train import accumulation, engines, validate
from mtl_jax.train.step import make_counts, make_forward, make_train_step
from tests.train import helpers as h

M = 4  # micro-batches of 2 examples out of 8


def _masked_batch(seed=0):
  """Micro-batch m holds rows m and m + 4 (strided split).

  ``reg`` is labelled on rows 1, 5, 6: micro-batches 0 and 3 have none of
  it, 1 has two and 2 has one. ``cls`` counts are 2, 1, 1, 2.
  """
  b = h.batch(seed, reg_mask=np.isin(np.arange(8), [1, 5, 6]))
  b["mask"]["cls"] = np.isin(np.arange(8), [0, 1, 2, 3, 4, 7])
  b["targets"]["reg"][~b["mask"]["reg"]] = np.nan  # must not leak
  return b


def _empty_reg_batch(seed=2):
  b = h.batch(seed, reg_mask=np.zeros(8, bool))
  b["targets"]["reg"][:] = np.nan
  return b


BATCHES = (_masked_batch(0), h.batch(1), _empty_reg_batch())


def _run(weighting_, aggregator, engine, steps, *, every=1, batches=BATCHES):
  p, _, tx, state = h.setup(weighting=weighting_, aggregator=aggregator,
                            engine=engine, lr=1.0)
  method = engines.resolve(weighting_, aggregator, engine, has_representation=True,
                           every=every)
  step = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx,
                                 accumulation_steps=steps))
  history = []
  for b in batches:
    new_state, metrics = step(state, b)
    delta = jax.tree.map(jnp.subtract, new_state.params, state.params)
    history.append((jax.device_get(delta), jax.device_get(metrics)))
    state = new_state
  return history


def _assert_same(whole, accumulated):
  for (delta_1, metrics_1), (delta_m, metrics_m) in zip(whole, accumulated):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 delta_1, delta_m)
    assert set(metrics_1) == set(metrics_m)
    for key in metrics_1:
      np.testing.assert_allclose(metrics_1[key], metrics_m[key], rtol=1e-5, atol=1e-6,
                                 err_msg=key)


CASES = {  # weighting, aggregator, engine
    "equal": lambda: (h.EQUAL, None, "weighted"),
    "gls": lambda: (weighting.get("gls"), None, "weighted"),
    "mgda_jacobian": lambda: (h.EQUAL, aggregation.get("mgda"), "jacobian"),
    "mgda_representation": lambda: (h.EQUAL, aggregation.get("mgda"), "representation"),
    "mgda_gramian": lambda: (h.EQUAL, aggregation.get("mgda"), "gramian"),
    # PCGrad has no `weights`: it needs the full Jacobian rows.
    "gls_pcgrad_jacobian": lambda: (weighting.get("gls"), aggregation.get("pcgrad"),
                                    "jacobian"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_accumulated_step_equals_whole_batch(case):
  """Masked micro-batches (a task absent from some), then plain, then a task absent."""
  w, agg, engine = CASES[case]()
  with jax.default_matmul_precision("highest"):
    whole = _run(w, agg, engine, 1)
    accumulated = _run(w, agg, engine, M)
  _assert_same(whole, accumulated)
  # The batches exercise what they claim: reg present in step 1, absent in 3.
  assert list(whole[0][1]["counts"]) == [6, 3]
  assert whole[2][1]["counts"][1] == 0 and whole[2][1]["losses"][1] == 0
  assert np.abs(whole[0][0]["tasks"]["reg"]["out"]["kernel"]).max() > 1e-4


def test_periodic_solve_and_reuse_equal_whole_batch():
  """every=2: solve (step 0), reuse with loss-dependent weights (1), solve (2)."""
  w, agg = weighting.get("gls"), aggregation.get("mgda")
  with jax.default_matmul_precision("highest"):
    whole = _run(w, agg, "jacobian", 1, every=2)
    accumulated = _run(w, agg, "jacobian", M, every=2)
  assert [bool(m["solved"]) for _, m in whole] == [True, False, True]
  _assert_same(whole, accumulated)


def test_micro_batches_are_strided():
  batch = {"x": np.arange(8), "y": np.arange(16).reshape(8, 2)}
  split = accumulation.micro_batches(batch, 4)
  np.testing.assert_array_equal(split["x"], [[0, 4], [1, 5], [2, 6], [3, 7]])
  np.testing.assert_array_equal(split["y"][1], [[2, 3], [10, 11]])


def _scans_in_step(weighting_):
  p, _, tx, state = h.setup(weighting=weighting_)
  method = engines.resolve(weighting_, None, "weighted", has_representation=True)
  step = make_train_step(p.graphdef, h.TASKS, method, tx, accumulation_steps=2)
  text = str(jax.make_jaxpr(step)(state, h.batch(0)))
  return text.count(" scan[")


def test_extra_forward_only_when_weights_read_the_losses():
  """Equal weights: one pass (VJPs); GLS: a forward-only pass first."""
  assert _scans_in_step(h.EQUAL) == 1
  assert _scans_in_step(weighting.get("gls")) == 2
  extras = dict(step=jnp.int32(0), key=jax.random.PRNGKey(0))
  reads = lambda w: accumulation.weights_read_losses(
      engines.Method(w, None, "weighted"), 2, w.init(2), extras, None)
  assert not reads(weighting.get("equal"))
  assert not reads(weighting.get("uncertainty"))  # exp(-log_var) of the state
  assert reads(weighting.get("gls"))


def test_batch_norm_state_is_carried_through_the_micro_batches():
  """rest after the step = the forward run on micro-batch 0, then on 1 (once)."""
  w = weighting.get("gls")  # two passes: the second must not re-update rest
  p, _, tx, state = h.setup(weighting=w, trunk="cnn", batch_norm=True)
  method = engines.resolve(w, None, "weighted", has_representation=True)
  step = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx, accumulation_steps=2))
  b = h.batch(0)
  new_state, _ = step(state, b)
  forward = jax.jit(make_forward(p.graphdef, h.TASKS))
  rest = state.rest
  for m in range(2):
    micro = jax.tree.map(lambda x: x[m::2], b)
    rest = forward(state.params, rest, micro)[1][1]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               new_state.rest, rest)
  # Per-micro-batch statistics and two updates: not the whole batch's one.
  whole_rest = forward(state.params, state.rest, b)[1][1]
  assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(whole_rest),
                                                    jax.tree.leaves(rest)))


def test_counts_without_the_model_match_the_losses():
  p, _, _, state = h.setup()
  b = _masked_batch()
  b["targets"]["cls"][0] = -1
  tasks = [dataclasses.replace(t, ignore_label=-1) if t.name == "cls" else t
           for t in h.TASKS]
  _, (counts, _) = make_forward(p.graphdef, tasks)(state.params, state.rest, b)
  np.testing.assert_array_equal(make_counts(tasks)(b), counts)
  np.testing.assert_array_equal(counts, [5, 3])


def test_errors_name_the_numbers():
  with pytest.raises(ValueError, match="batch_size=8 .*accumulation_steps=3"):
    accumulation.micro_batches(h.batch(0), 3)
  with pytest.raises(ValueError, match="micro-batch of 4 .*8 devices"):
    accumulation.check_batch(16, 4, num_devices=8)
  for bad in (0, -2, 1.5, True):
    with pytest.raises(ValueError, match="train.accumulation_steps"):
      accumulation.check_steps(bad)
  p, method, tx, state = h.setup()
  with pytest.raises(ValueError, match="train.accumulation_steps"):
    make_train_step(p.graphdef, h.TASKS, method, tx, accumulation_steps=0)
  step = make_train_step(p.graphdef, h.TASKS, method, tx, accumulation_steps=3)
  with pytest.raises(ValueError, match="batch_size=8 .*accumulation_steps=3"):
    jax.eval_shape(step, state, h.batch(0))


def _train_config(**kw):
  return ml_collections.ConfigDict(dict(num_steps=10, batch_size=8, **kw))


def test_config_checks():
  settings.parse_train(_train_config(accumulation_steps=4))
  with pytest.raises(ValueError, match="batch_size=8 .*accumulation_steps=3"):
    settings.parse_train(_train_config(accumulation_steps=3))
  with pytest.raises((ValueError, TypeError), match="train.accumulation_steps"):
    settings.parse_train(_train_config(accumulation_steps=0))
  train = dict(num_steps=10, batch_size=16, accumulation_steps=4)
  mesh = settings.parse_mesh(dict(num_devices=8))
  with pytest.raises(ValueError, match="micro-batch of 4 .*8 devices"):
    validate.check_devices(settings.parse_train(train), mesh)
  train["accumulation_steps"] = 2
  validate.check_devices(settings.parse_train(train), mesh)


def test_loop_builds_the_step_probe_and_eval_step_from_the_config(
    tiny_sprites_config, monkeypatch):
  from mtl_jax.train import loop
  seen = {}
  def spy(name, fn):
    def wrapped(*args, **kwargs):
      seen[name] = kwargs
      return fn(*args, **kwargs)
    monkeypatch.setattr(loop, name, wrapped)
  for name in ("make_train_step", "make_eval_step", "make_gramian_probe"):
    spy(name, getattr(loop, name))
  c = tiny_sprites_config
  c.train.update(dict(compute_dtype="bfloat16", accumulation_steps=4))
  loop.compile_run(loop.setup(c))
  assert seen["make_train_step"]["accumulation_steps"] == 4
  assert seen["make_gramian_probe"]["accumulation_steps"] == 4
  assert set(seen) == {"make_train_step", "make_eval_step", "make_gramian_probe"}
  assert {seen[n]["compute_dtype"] for n in seen} == {"bfloat16"}
