"""Learning to branch: hand-set logits give the implied tree and network."""

import jax
import ml_collections
import numpy as np
import optax
import pytest

from mtl_jax import models
from mtl_jax.models.branching import BranchingSearch, derive_architecture
from tests.models import arch_checks
from tests.train import helpers as h

SHAPE = (8, 8, 1)


def _config(hidden=(4, 4, 4), **branching):
  return ml_collections.ConfigDict(dict(
      arch="branching", trunk=dict(kind="mlp", hidden=hidden),
      branching=dict(dict(blocks=(1, 2, 3)[:len(hidden)]), **branching),
      head=dict(hidden=())))


def test_partition_and_representation_engine_refused():
  model = models.build(h.TASKS, SHAPE, **_config())
  p = arch_checks.assert_partition_exhaustive(model)
  assert [len(layer) for layer in p.shared["layers"].values()] == [1, 2, 3]
  assert [a.shape for a in p.cross["parents"].values()] == [(2, 1), (3, 2)]
  assert {n: a.shape for n, a in p.cross["heads"].items()} == {"cls": (3,), "reg": (3,)}
  assert set(p.rest) == {"count", "noise_key"}               # search state, not params
  arch_checks.assert_representation_refused(model)


def _hand_set(params, big=100.0):
  """Layer 2: blocks 0, 1, 2 take parents 1, 0, 1; cls reads block 2, reg block 1."""
  params = jax.tree.map(np.asarray, params)
  params["cross"]["parents"][1] = big * np.eye(2, dtype=np.float32)[[1, 0, 1]]
  params["cross"]["heads"]["cls"] = big * np.eye(3, dtype=np.float32)[2]
  params["cross"]["heads"]["reg"] = big * np.eye(3, dtype=np.float32)[1]
  return params


def test_derived_tree_follows_the_logits():
  p = models.partition(models.build(h.TASKS, SHAPE, **_config()))
  params = _hand_set(models.params_of(p))
  want = {"cls": [0, 1, 2], "reg": [0, 0, 1]}     # branch apart at layer 1
  assert derive_architecture(params) == want
  assert derive_architecture(params["cross"]) == want
  assert BranchingSearch.derive_architecture(params) == want


def test_network_is_the_derived_tree():
  model = models.build(h.TASKS, SHAPE, **_config())
  p = models.partition(model)
  params = _hand_set(models.params_of(p))

  @jax.jit
  def run(prm, rest, x):
    m = models.merge(p.graphdef, prm, rest)
    layers = m.shared["layers"]
    path = lambda blocks: layers[2][blocks[2]](layers[1][blocks[1]](layers[0][0](x)))
    hand = {"cls": m.tasks["cls"](path([0, 1, 2])), "reg": m.tasks["reg"](path([0, 0, 1]))}
    return m(x, train=False), m(x, train=True), hand

  x = np.random.default_rng(0).random((3, 64), np.float32)
  evaluated, trained, hand = run(params, p.rest, x)
  for name in ("cls", "reg"):
    np.testing.assert_allclose(evaluated[name], hand[name], rtol=1e-6)
    # Gumbel noise cannot overturn logit gaps of 100 at tau = 1.
    np.testing.assert_allclose(trained[name], hand[name], rtol=1e-5, atol=1e-6)
  # Uniform logits: the sampled mixture changes with the step counter.
  uniform = jax.tree.map(np.asarray, models.params_of(p))
  first = run(uniform, p.rest, x)[1]
  later = run(uniform, dict(p.rest, count=np.uint32(1)), x)[1]
  assert not np.allclose(first["cls"], later["cls"])


@pytest.mark.parametrize("aggregator", [None, "mgda"])
def test_trains_two_steps(aggregator):
  config = _config(hidden=(4, 4), hard=aggregator is None)
  model = models.build(h.TASKS, SHAPE, **config)
  _, states, _ = arch_checks.train_two_steps(model, aggregator, tx=optax.sgd(1e-1),
                                             fast_compile=True, weighting_method=h.EQUAL)
  assert int(states[-1].rest["count"]) == 2
  arch_checks.assert_moved(states[0].params, states[-1].params, ("shared", "tasks", "cross"),
                           every=False)


@pytest.mark.parametrize("branching, match", [
    (dict(blocks=(1, 2)), r"branching.blocks.*\(1, 2\)"),
    (dict(tau=0.0), "branching.tau.*0.0"),
    (dict(eval_mode="mode"), "branching.eval_mode.*'mode'"),
])
def test_bad_config_raises(branching, match):
  with pytest.raises(ValueError, match=match):
    models.build(h.TASKS, SHAPE, **_config(**branching))
