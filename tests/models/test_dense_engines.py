"""Every gradient engine runs a training step on a tiny dense hard-sharing
SegNet (segmentation, depth, normals and a per-example task); the jacobian and
gramian engines give the same update for a Gramian-based aggregator (UPGrad)."""

import jax
import numpy as np
import pytest

from mtl_jax import models
from mtl_jax.train.engines.base import heads_of
from mtl_jax.train.step import make_encode_decode
from tests.models import arch_checks, dense_checks as d

SEGNET = dict(kind="segnet", channels=(4, 8), layers=(1, 1))
ENGINES = (("weighted", None), ("jacobian", "upgrad"), ("gramian", "upgrad"),
           ("representation", "upgrad"))


@pytest.fixture(scope="module")
def runs():
  """Two steps of the same model on every engine: ``{engine: (states, history)}``
  and the model's graph definition under ``'graphdef'``."""
  model = models.build(d.TASKS, d.SHAPE, arch="hard_sharing", trunk=SEGNET)
  out = {engine: d.train_steps(model, engine, aggregator, steps=2)
         for engine, aggregator in ENGINES}
  out["graphdef"] = models.partition(model).graphdef
  return out


@pytest.mark.parametrize("engine", [e for e, _ in ENGINES])
def test_every_engine_trains_a_dense_model(runs, engine):
  states, history = runs[engine]
  assert np.all(np.asarray(history[0]["counts"]) > 0)
  arch_checks.assert_moved(states[0].params, states[-1].params, ("shared", "tasks"))
  if engine != "weighted":
    gram = np.asarray(history[0]["gramian"], np.float64)
    assert gram.shape == (4, 4)
    assert np.all(np.linalg.eigvalsh(gram) > -1e-4 * np.trace(gram))


def test_jacobian_and_gramian_engines_agree_on_a_dense_model(runs):
  (sj, hj), (sg, hg) = runs["jacobian"], runs["gramian"]
  np.testing.assert_allclose(hj[0]["gramian"], hg[0]["gramian"], rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(hj[0]["agg_weights"], hg[0]["agg_weights"], rtol=1e-4,
                             atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               sj[1].params, sg[1].params)


def test_representation_gramian_is_of_the_feature_map_gradients(runs):
  """The representation engine's Gramian is that of the task gradients w.r.t.
  the shared [B, H, W, C] map: recompute it from the model's decode."""
  states, history = runs["representation"]
  state, batch = states[0], d.batch(0)
  encode, decode = make_encode_decode(runs["graphdef"], d.TASKS)
  names = [t.name for t in d.TASKS]

  @jax.jit
  def jacobian_rows(params, rest):
    z, rest = encode(params["shared"], params, rest, batch)
    loss = lambda zz, t: decode({n: zz for n in names}, heads_of(params), params, rest,
                                batch)[0][t]
    return z, [jax.grad(loss)(z, t) for t in range(len(names))]
  z, rows = jacobian_rows(state.params, state.rest)
  assert z.shape == (2, 16, 16, 4)
  rows = np.stack([np.asarray(g, np.float64).reshape(-1) for g in rows])
  np.testing.assert_allclose(history[0]["gramian"], rows @ rows.T, rtol=1e-3, atol=1e-9)
