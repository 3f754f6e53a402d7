"""Non-finite values: every injection point skips the update (state kept,
counted, reported), and ``train.nonfinite='halt'`` ends ``mtl-jax train``
with exit code 3, a message and a checkpoint of the last good state."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation, cli
from mtl_jax.data import checks
from mtl_jax.train import checkpoint, logger, loop
from mtl_jax.train.checkpoint import Checkpointer
from mtl_jax.train.step import make_train_step
from tests.reliability import common
from tests.train import helpers as h

PCGRAD = aggregation.get("pcgrad")
NAN_WEIGHTS = PCGRAD._replace(  # a real aggregator whose solver returns NaN
    weights=lambda gram, state, **_: (jnp.full(gram.shape[0], jnp.nan), state))


def _huge_logits(state, batch):
  heads = state.params["tasks"]
  cls = jax.tree.map(lambda x: jnp.full_like(x, 3e38), heads["cls"])
  return state._replace(params=dict(state.params, tasks=dict(heads, cls=cls))), batch


def _inf_input(state, batch):
  batch["inputs"][0, 0, 0, 0] = np.inf
  return state, batch


def _nan_regression_target(state, batch):
  batch["targets"]["reg"][3, 1] = np.nan  # a labelled row
  return state, batch


def _nan_gradient_penalty(params):
  """Value 0 (finite), gradient 0 * inf = NaN."""
  total = sum(jnp.sum(x) for x in jax.tree.leaves(params["shared"]))
  return jnp.sqrt(0.0 * total)


CASES = {  # name: (inject, aggregator, penalty, tasks reported non-finite)
    "huge_logit": (_huge_logits, None, None, ["cls"]),
    "input": (_inf_input, None, None, ["cls", "reg"]),
    "regression_label": (_nan_regression_target, None, None, ["reg"]),
    "gradient": (lambda s, b: (s, b), None, _nan_gradient_penalty, []),
    "aggregator_weights": (lambda s, b: (s, b), NAN_WEIGHTS, None, []),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_nonfinite_update_is_skipped_and_reported(case):
  inject, agg, penalty, bad_tasks = CASES[case]
  p, method, tx, state = h.setup(aggregator=agg)
  step = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx, penalty=penalty))
  state, batch = inject(state, h.batch(0))
  before = jax.device_get(state)
  new_state, metrics = step(state, batch)
  record = logger.flatten_train(h.TASKS, jax.device_get(metrics))
  assert record["skipped"] is True and record["nonfinite_tasks"] == bad_tasks
  assert int(new_state.step) == 1 and int(new_state.nonfinite_streak) == 1
  assert int(new_state.nonfinite_total) == 1
  for field in ("params", "opt_state", "weighting_state", "aggregation_state", "rest"):
    common.assert_bit_identical(getattr(new_state, field), getattr(before, field))


def test_pipeline_refuses_nonfinite_labels_and_inputs():
  with pytest.raises(ValueError, match=r"Feature 'x': non-finite value nan"):
    checks.targets("x", {"kind": "regression", "dim": 1}, np.array([0.5, np.nan]))
  with pytest.raises(ValueError, match=r"Feature 'image': non-finite value inf"):
    checks.inputs("image", np.array([[0.5], [np.inf]], np.float32), (1,))


def test_halt_run_exits_3_with_a_message_and_a_checkpoint(data_dir, tmp_path, capsys):
  """Adam with learning rate 1e30 overflows at step 2: two skipped updates halt."""
  workdir = str(tmp_path / "halt")
  o = "--config."
  args = common.cli_args(data_dir, workdir) + [
      f"{o}optimizer.learning_rate=1e30", f"{o}train.nonfinite=halt",
      f"{o}train.max_nonfinite=2", f"{o}method.aggregation="]
  assert cli.main(args) == 3
  err = capsys.readouterr().err
  assert "mtl-jax train: Halting at step 3: 2 consecutive updates had non-finite" in err
  assert "saved as checkpoint step 3" in err
  records = common.train_records(workdir)
  assert [r["skipped"] for r in records] == [False, True, True]
  assert records[-1]["nonfinite_tasks"]
  config = common.tiny_config(data_dir, workdir)
  config.method.aggregation = None
  s = loop.setup(config)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), every=0)
  assert ckpt.latest_step() == 3
  state, _, _ = ckpt.restore(loop.compile_run(s).abstract_state,
                             checkpoint.meta_for(s.tasks, config))
  ckpt.close()
  assert int(state.nonfinite_streak) == 2 and int(state.nonfinite_total) == 2
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state.params)))
