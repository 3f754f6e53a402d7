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
  model = models.build(_config(), h.TASKS, SHAPE)
  p = arch_checks.assert_partition_exhaustive(model)
  assert set(p.shared) == {"first", "second", "final"}
  att = p.tasks["cls"]
  assert set(att) == {"g", "h", "f", "head"}
  assert att["g"][1]["kernel"].shape == (1, 1, 2 * 3, 3)  # [u_2 ; f(ahat_1)] -> c_2
  assert att["f"][0]["kernel"].shape == (3, 3, 2, 3)      # block 1 -> block 2 width
  arch_checks.assert_representation_refused(model)


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
  p = models.partition(models.build(_config(kind), h.TASKS, SHAPE))
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
  model = models.build(_config(kind, trunk=trunk), h.TASKS, SHAPE)
  _, states, _ = arch_checks.train_two_steps(model, aggregator, tx=optax.sgd(1e-2),
                                             fast_compile=True, weighting_method=h.EQUAL)
  arch_checks.assert_moved(states[0].params, states[-1].params, ("shared", "tasks"),
                           every=False)


@pytest.mark.parametrize("trunk, match", [
    (dict(kind="rnn"), "model.trunk.kind.*'rnn'"),
    (dict(kind="cnn", channels=(2, 2, 2, 2)), "too small"),
    (dict(kind="mlp", hidden=(4, 0)), "model.trunk.hidden.*0"),
])
def test_bad_config_raises(trunk, match):
  with pytest.raises(ValueError, match=match):
    models.build(ml_collections.ConfigDict(dict(arch="mtan", trunk=trunk)), h.TASKS,
                 SHAPE)
