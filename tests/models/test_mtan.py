"""MTAN: masks of 1 give the shared features; masks of 1/2 halve them."""

import jax
import ml_collections
import numpy as np
import optax
import pytest

from mtl_jax import models
from tests.models import arch_checks
from tests.train import helpers as h

SHAPE = (8, 8, 1)
TRUNKS = {"cnn": dict(kind="cnn", channels=(2, 3), features=4),
          "mlp": dict(kind="mlp", hidden=(5, 4))}


def _config(kind="cnn", **overrides):
  c = dict(arch="mtan", trunk=TRUNKS[kind], head=dict(hidden=()))
  c.update(overrides)
  return ml_collections.ConfigDict(c)


def test_partition_and_representation_engine_refused():
  model = models.build(h.TASKS, SHAPE, **_config())
  p = arch_checks.assert_partition_exhaustive(model)
  assert set(p.shared) == {"first", "second", "final"}
  att = p.tasks["cls"]
  assert set(att) == {"g", "h", "f", "g_norm", "h_norm", "f_norm", "head"}
  assert att["g"][1]["kernel"].shape == (1, 1, 2 * 3, 3)  # [u_2 ; f(ahat_1)] -> c_2
  assert att["f"][0]["kernel"].shape == (3, 3, 2, 3)      # block 1 -> block 2 width
  arch_checks.assert_representation_refused(model)


@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_attention_batch_norms_are_task_parameters_and_state(kind):
  """conv1x1-BN-ReLU-conv1x1-BN-sigmoid (and f: conv-BN-act) by default: one
  batch norm per g, h and f, its scale and bias in the task's group, its
  statistics in ``rest`` under the same task; attention_norm=False drops them."""
  widths = (2, 3) if kind == "cnn" else (5, 4)
  with_norm = models.partition(models.build(h.TASKS, SHAPE, **_config(kind)))
  plain = models.partition(models.build(h.TASKS, SHAPE, **_config(kind, attention_norm=False)))
  assert plain.rest == {} and set(plain.tasks["cls"]) == {"g", "h", "f", "head"}
  for name in ("cls", "reg"):
    att, stats = with_norm.tasks[name], with_norm.rest["tasks"][name]
    for norm, sizes in (("g_norm", widths), ("h_norm", widths), ("f_norm", widths[1:])):
      assert [att[norm][j]["scale"].shape for j in range(len(sizes))] == [
          (c,) for c in sizes]
      assert [set(stats[norm][j]) for j in range(len(sizes))] == [{"mean", "var"}] * len(
          sizes)
    others = {k: v for k, v in att.items() if not k.endswith("_norm")}
    np.testing.assert_equal(jax.tree.map(np.shape, others),
                            jax.tree.map(np.shape, plain.tasks[name]))
  assert with_norm.shared.keys() == plain.shared.keys()
  run = jax.jit(lambda p, x: models.merge(p.graphdef, models.params_of(p), p.rest)(x))
  x = np.random.default_rng(1).random((3, *SHAPE), np.float32)
  for p in (with_norm, plain):
    out = run(p, x)
    assert out["cls"].shape == (3, 3) and out["reg"].shape == (3, 2)


def _with_masks(params, logit):
  """Masks ``sigmoid(logit)`` everywhere: zero kernels, bias ``logit`` in ``h``."""
  params = jax.tree.map(lambda a: a, params)
  for att in params["tasks"].values():
    for layer in att["h"].values():
      layer["kernel"] = np.zeros_like(layer["kernel"])
      layer["bias"] = np.full_like(layer["bias"], logit)
  return params


@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_unit_masks_give_the_shared_features(kind):
  p = models.partition(models.build(h.TASKS, SHAPE, **_config(kind)))
  features = jax.jit(lambda prm, x: models.merge(p.graphdef, prm, p.rest).features(x))
  x = np.random.default_rng(0).random((3, *SHAPE), np.float32)
  shared, per_task = features(models.params_of(p), x)
  assert not np.allclose(per_task["cls"], shared)           # learnt masks differ
  shared_1, ones = features(_with_masks(models.params_of(p), 40.0), x)  # sigmoid = 1
  for name in ("cls", "reg"):
    np.testing.assert_array_equal(ones[name], shared_1)
  if kind == "mlp":  # Task features are ahat = mask * p_J: masks of 1/2 halve them.
    _, halves = features(_with_masks(models.params_of(p), 0.0), x)
    np.testing.assert_allclose(halves["reg"], 0.5 * np.asarray(shared), rtol=1e-6)


@pytest.mark.parametrize("aggregator, kind", [(None, "cnn"), ("mgda", "mlp")])
def test_trains_two_steps(aggregator, kind):
  # One block keeps compilation short; the mask tests cover the two-block path.
  trunk = {"cnn": dict(kind="cnn", channels=(2,), features=4),
           "mlp": dict(kind="mlp", hidden=(5,))}[kind]
  model = models.build(h.TASKS, SHAPE, **_config(kind, trunk=trunk))
  _, states, _ = arch_checks.train_two_steps(model, aggregator, tx=optax.sgd(1e-2),
                                             fast_compile=True, weighting_method=h.EQUAL)
  arch_checks.assert_moved(states[0].params, states[-1].params, ("shared", "tasks"),
                           every=False)
  # Training updates the attention batch statistics (use_running_average=False).
  arch_checks.assert_moved(states[0].rest, states[-1].rest, ("tasks",))


@pytest.mark.parametrize("trunk, extra, match", [
    (dict(kind="rnn"), {}, "trunk.kind.*'rnn'"),
    (dict(kind="cnn", channels=(2, 2, 2, 2)), {}, "too small"),
    (dict(kind="mlp", hidden=(4, 0)), {}, "trunk.hidden.*0"),
    (dict(kind="mlp", hidden=(4,)), dict(attention_norm="yes"), "attention_norm.*'yes'"),
])
def test_bad_config_raises(trunk, extra, match):
  with pytest.raises(ValueError, match=match):
    models.build(h.TASKS, SHAPE,
                 **ml_collections.ConfigDict(dict(arch="mtan", trunk=trunk, **extra)))
