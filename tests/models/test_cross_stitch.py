"""Cross-stitch / sluice: units mix columns; identity = independent columns."""

import functools

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from mtl_jax import aggregation, models, weighting
from mtl_jax.models.cross_stitch import init_alpha, mix
from tests.models import arch_checks
from tests.train import helpers as h

TRUNKS = {"mlp": dict(kind="mlp", hidden=(8, 6)),
          "cnn": dict(kind="cnn", channels=(4,), features=6, batch_norm=True),
          "mlp_equal": dict(kind="mlp", hidden=(6, 6))}
X = jnp.asarray(h.batch(0)["inputs"])


def _config(trunk="mlp", **extra):
  return ml_collections.ConfigDict(dict(arch="cross_stitch", trunk=TRUNKS[trunk],
                                        head=dict(hidden=()), **extra))


@functools.cache
def _model(trunk="mlp", sluice=False):
  """Built once per variant; tests that change alpha use :func:`_with_cross`."""
  extra = dict(sluice=True, subspaces=2) if sluice else {}
  return models.build(h.TASKS, (8, 8, 1), **_config(trunk, **extra))


def _with_cross(model, **cross):
  """A copy of ``model`` with some ``cross`` parameters replaced."""
  graphdef, state = nnx.split(model)
  state = nnx.to_pure_dict(state)
  state["cross"].update({k: jnp.asarray(v, jnp.float32) for k, v in cross.items()})
  new_state = nnx.state(model)
  nnx.replace_by_pure_dict(new_state, state)
  return nnx.merge(graphdef, new_state)


def test_init_alpha_is_hand_computed():
  np.testing.assert_allclose(init_alpha(2, 0.9), [[0.9, 0.1], [0.1, 0.9]], rtol=1e-6)
  np.testing.assert_allclose(init_alpha(3, 0.9), [[0.9, 0.05, 0.05], [0.05, 0.9, 0.05],
                                                  [0.05, 0.05, 0.9]], rtol=1e-6)
  np.testing.assert_array_equal(init_alpha(1, 0.9), [[1.0]])


def test_mix_is_hand_computed():
  h2 = jnp.array([[[1.0, 2.0]], [[3.0, 4.0]]])  # K=2 columns, B=1, C=2
  alpha = jnp.array([[0.5, 0.25], [0.0, 2.0]])
  np.testing.assert_allclose(mix(alpha, h2), [[[1.25, 2.0]], [[6.0, 8.0]]])
  # Sluice, m=2 subspaces of width 1, order (t0 s0, t0 s1, t1 s0, t1 s1) = (1, 2, 3, 4):
  # swapping t0's subspace 1 with t1's subspace 0 gives (1, 3) and (2, 4).
  swap = jnp.eye(4)[jnp.array([0, 2, 1, 3])]
  np.testing.assert_allclose(mix(swap, h2, 2), [[[1.0, 3.0]], [[2.0, 4.0]]])


@pytest.mark.parametrize("trunk,sluice", [("mlp", False), ("cnn", False),
                                          ("mlp_equal", True)])
def test_partition_groups(trunk, sluice):
  model = _model(trunk, sluice)
  p = arch_checks.assert_partition_exhaustive(model)
  assert p.shared == {} and set(p.tasks) == {"cls", "reg"}
  assert set(p.tasks["cls"]) == {"column", "head"}
  layers = 2
  if sluice:
    assert p.cross["alpha"].shape == (layers, 4, 4)  # K m = 2 * 2
    np.testing.assert_array_equal(p.cross["beta"], [[0, 1], [0, 1]])
  else:
    assert set(p.cross) == {"alpha"} and p.cross["alpha"].shape == (layers, 2, 2)
    np.testing.assert_allclose(p.cross["alpha"][0], [[0.9, 0.1], [0.1, 0.9]])
  assert not hasattr(model, "encode")


@pytest.mark.parametrize("trunk,sluice", [("mlp", False), ("cnn", False),
                                          ("mlp_equal", True)])
def test_identity_units_give_independent_columns(trunk, sluice):
  base = _model(trunk, sluice)
  eye = jnp.tile(jnp.eye(base.cross["alpha"].shape[-1]), (2, 1, 1))
  model = _with_cross(base, alpha=eye)  # sluice: beta starts at the last layer
  out = model(X)
  for name in ("cls", "reg"):
    column, head = model.tasks[name]["column"], model.tasks[name]["head"]
    np.testing.assert_allclose(out[name], head(column(X)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("trunk", ["mlp", "cnn"])
def test_uniform_units_feed_every_column_the_same_input(trunk):
  model = _with_cross(_model(trunk), alpha=jnp.full((2, 2, 2), 0.5))
  for h_layer in model.stitched(X):
    np.testing.assert_allclose(h_layer[0], h_layer[1], rtol=1e-6)
  # ...while the default (near-identity) units keep the columns apart.
  assert not np.allclose(*_model(trunk).stitched(X)[0])


def test_sluice_beta_combines_the_layer_outputs():
  model = _with_cross(_model("mlp_equal", True), beta=[[0.5, 0.5], [2.0, 0.0]])
  layers = model.stitched(X)
  out = model(X)
  np.testing.assert_allclose(
      out["cls"], model.tasks["cls"]["head"](0.5 * layers[0][0] + 0.5 * layers[1][0]),
      rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["reg"], model.tasks["reg"]["head"](2.0 * layers[0][1]),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("extra,match", [
    (dict(alpha_self=1.5), r"alpha_self must be a number in \[0, 1\], got 1.5"),
    (dict(sluice=True), r"sluice=True .* same width; got widths \[8, 6\]"),
    (dict(sluice=True, subspaces=4, trunk=dict(kind="mlp", hidden=(6, 6))),
     r"subspaces=4 must divide every layer width"),
    (dict(sluice="yes"), r"sluice must be True or False, got 'yes'"),
])
def test_bad_config_raises(extra, match):
  config = _config()
  config.update(extra)
  with pytest.raises(ValueError, match=match):
    models.build(h.TASKS, (8, 8, 1), **config)


@pytest.mark.parametrize("trunk,sluice,agg,engine", [
    ("mlp", False, None, "auto"), ("mlp_equal", True, "mgda", "jacobian")])
def test_trains_two_steps(trunk, sluice, agg, engine):
  model = _model(trunk, sluice)
  _, states, history = arch_checks.train_two_steps(model, agg, engine)
  arch_checks.assert_moved(states[0].params, states[-1].params, ("tasks", "cross"))


def test_representation_engine_is_refused():
  arch_checks.assert_representation_refused(_model("mlp"), weighting.get("equal"),
                                            aggregation.get("mgda"))
