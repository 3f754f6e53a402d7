"""The train step: compiled once, engines agree, empty and non-finite batches."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mtl_jax import models
from mtl_jax.models.hard_sharing import HardSharing
from mtl_jax.train import engines, state as state_lib
from mtl_jax.train.step import make_forward, make_train_step
from tests.train import helpers as h


def _run(steps=3, **kw):
  p, method, tx, state = h.setup(**kw)
  step = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx), donate_argnums=0)
  history = []
  for i in range(steps):
    state, metrics = step(state, h.batch(i))
    history.append(jax.device_get(metrics))
  return state, history, step


def test_step_compiles_once_and_loss_falls():
  state, history, step = _run(steps=30)
  assert step._cache_size() == 1
  assert int(state.step) == 30
  first, last = history[0]["losses"].sum(), history[-1]["losses"].sum()
  assert np.isfinite(last) and last < first


@pytest.mark.parametrize("engine", ["jacobian", "gramian", "representation"])
def test_gradient_engines_match_weighted_sum(engine):
  """Mean aggregation on any engine = SGD on the summed loss, shared grad halved."""
  p, method, tx, state = h.setup(aggregator=h.MEAN, engine=engine, trunk="cnn",
                                 batch_norm=True)
  step = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx))
  new_state, metrics = step(state, h.batch(0))
  reference = engines.get("weighted")(
      engines.ModelFns(forward=make_forward(p.graphdef, h.TASKS)), state, h.batch(0),
      engines.resolve(h.EQUAL, None, "weighted", has_representation=True),
      dict(step=0, key=jax.random.PRNGKey(0))).grads
  lr = 1e-2
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  jax.tree.map(lambda new, w, g: close(new, w - lr * 0.5 * g),
               new_state.params["shared"], state.params["shared"], reference["shared"])
  jax.tree.map(lambda new, w, g: close(new, w - lr * g),
               new_state.params["tasks"], state.params["tasks"], reference["tasks"])
  np.testing.assert_allclose(metrics["agg_weights"], [0.5, 0.5])
  gram = np.asarray(metrics["gramian"], np.float64)
  np.testing.assert_allclose(gram, gram.T, rtol=1e-5)
  assert np.all(np.linalg.eigvalsh(gram) > -1e-4 * np.trace(gram))


def test_jacobian_and_gramian_engines_give_the_same_gramian():
  grams = {}
  for engine in ("jacobian", "gramian"):
    p, method, tx, state = h.setup(aggregator=h.MEAN, engine=engine)
    step = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx))
    grams[engine] = step(state, h.batch(0))[1]["gramian"]
  np.testing.assert_allclose(grams["jacobian"], grams["gramian"], rtol=1e-5)


def test_empty_task_reports_zero_loss_and_count():
  p, method, tx, state = h.setup()
  step = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx))
  b = h.batch(0, reg_mask=np.zeros(8, bool))
  b["targets"]["reg"][:] = np.nan
  new_state, metrics = step(state, b)
  assert metrics["losses"][1] == 0.0 and metrics["counts"][1] == 0
  assert not bool(metrics["skipped"])
  # The regression head got no gradient at all.
  jax.tree.map(np.testing.assert_array_equal, new_state.params["tasks"]["reg"],
               state.params["tasks"]["reg"])


def test_non_finite_update_is_skipped_and_counted():
  p, method, tx, state = h.setup()
  step = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx))
  b = h.batch(0)
  b["inputs"][0, 0, 0, 0] = np.nan
  new_state, metrics = step(state, b)
  assert bool(metrics["skipped"])
  assert int(new_state.step) == 1
  assert int(new_state.nonfinite_streak) == 1 and int(new_state.nonfinite_total) == 1
  jax.tree.map(np.testing.assert_array_equal, new_state.params, state.params)
  good_state, _ = step(new_state, h.batch(1))
  assert int(good_state.nonfinite_streak) == 0 and int(good_state.nonfinite_total) == 1


def test_engine_errors_are_clear():
  no_weights = h.MEAN._replace(weights=None)
  with pytest.raises(ValueError, match="needs the full Jacobian"):
    engines.resolve(h.EQUAL, no_weights, "gramian", has_representation=True)
  with pytest.raises(ValueError, match="single shared representation"):
    engines.resolve(h.EQUAL, h.MEAN, "representation", has_representation=False)
  with pytest.raises(ValueError, match="computes no per-task gradients"):
    engines.resolve(h.EQUAL, h.MEAN, "weighted", has_representation=True)
  with pytest.raises(ValueError, match="Unknown engine"):
    engines.resolve(h.EQUAL, None, "jacobean", has_representation=True)



def test_a_new_engine_is_one_function_and_one_registry_line(monkeypatch):
  """An engine declared with ``@requires`` and named in the registry (a user's
  with ``REGISTRY.register``): resolve reads its requirements, the step calls
  it like the others."""
  @engines.requires(task_gradients=False)
  def halved(fns, state, batch, method, extras):
    out = engines.get("weighted")(fns, state, batch, method, extras)
    return out._replace(grads=jax.tree.map(lambda g: 0.5 * g, out.grads))
  monkeypatch.setattr(engines.REGISTRY, "registered", {})
  engines.REGISTRY.register("halved", halved)
  with pytest.raises(ValueError, match="'halved' computes no per-task gradients"):
    engines.resolve(h.EQUAL, h.MEAN, "halved", has_representation=True)
  norms = {}
  for engine in ("weighted", "halved"):
    p, _, tx, state = h.setup()
    method = engines.resolve(h.EQUAL, None, engine, has_representation=True)
    _, metrics = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx))(
        state, h.batch(0))
    norms[engine] = metrics["grad_norm"]
  np.testing.assert_allclose(norms["halved"], 0.5 * norms["weighted"], rtol=1e-6)

def test_periodic_engine_reuses_the_last_solve():
  """every=2: steps 0, 2 solve; steps 1, 3 reuse the weights of the solve before."""
  step_weights = h.from_weights(
      lambda n, p=None: (),
      lambda g, s, *, step, **_: (jnp.stack([step + 1.0, 1.0]).astype(jnp.float32), s))
  p, _, tx, state = h.setup(aggregator=step_weights, engine="jacobian")
  method = engines.resolve(h.EQUAL, step_weights, "jacobian", has_representation=True,
                           every=2)
  step = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx))
  seen, solved = [], []
  for i in range(4):
    state, metrics = step(state, h.batch(i))
    seen.append(list(np.asarray(metrics["agg_weights"])))
    solved.append(bool(metrics["solved"]))
  assert seen == [[1, 1], [1, 1], [3, 1], [3, 1]]
  assert solved == [True, False, True, False]
  assert step._cache_size() == 1


def test_periodic_engine_with_constant_weights_equals_every_step():
  results = []
  for every in (1, 3):
    p, _, tx, state = h.setup(aggregator=h.MEAN, engine="jacobian")
    method = engines.resolve(h.EQUAL, h.MEAN, "jacobian", has_representation=True,
                             every=every)
    step = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx))
    for i in range(4):
      state, _ = step(state, h.batch(i))
    results.append(state.params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               *results)


def test_periodic_engine_refuses_full_jacobian_aggregators():
  with pytest.raises(ValueError, match="method.every > 1"):
    engines.resolve(h.EQUAL, h.MEAN._replace(weights=None), "jacobian",
                    has_representation=True, every=2)


class _NormHead(nnx.Module):
  """A task head with batch norm: state that changes in ``decode``."""

  def __init__(self, features: int, out: int, *, rngs: nnx.Rngs):
    self.norm = nnx.BatchNorm(features, momentum=0.5, rngs=rngs)
    self.out = nnx.Linear(features, out, rngs=rngs)

  def __call__(self, z, *, train: bool = False):
    return self.out(self.norm(z, use_running_average=not train))


@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_representation_engine_keeps_the_heads_batch_statistics(accumulation_steps):
  """Batch statistics updated inside ``decode`` reach the new state, as with
  the full-forward engines (they were dropped: the state kept the trunk's)."""
  model = HardSharing(h.TASKS, (8, 8, 1), trunk=h.model_config().trunk,
                      head=h.model_config().head, rngs=nnx.Rngs(0))
  model.tasks = nnx.Dict({t.name: _NormHead(model.shared.out_features, t.out_features,
                                            rngs=nnx.Rngs(1)) for t in h.TASKS})
  p = models.partition(model)
  rests = {}
  for engine in ("weighted", "representation"):
    method = engines.resolve(h.EQUAL, None if engine == "weighted" else h.MEAN, engine,
                             has_representation=True)
    tx = optax.sgd(1e-2)
    state = state_lib.init_state(p, tx, method, seed=0)
    step = jax.jit(make_train_step(p.graphdef, h.TASKS, method, tx,
                                   accumulation_steps=accumulation_steps))
    rests[engine] = step(state, h.batch(0))[0].rest
  before = jax.tree.leaves(p.rest["tasks"])
  after = jax.tree.leaves(rests["representation"]["tasks"])
  assert before and any(not np.allclose(a, b) for a, b in zip(after, before))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               rests["representation"], rests["weighted"])
