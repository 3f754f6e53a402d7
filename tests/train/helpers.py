"""Small in-memory models, batches and methods for train-step tests."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mtl_jax import models, tasks as tasks_lib
from mtl_jax.aggregation.base import from_weights  # noqa: F401 (used by tests)
from mtl_jax.train import engines, optimizer, state as state_lib
from mtl_jax.weighting.base import Weighting

TASKS = tasks_lib.from_config({
    "cls": dict(kind="multiclass", num_classes=3),
    "reg": dict(kind="regression", dim=2),
})

# Minimal in-test methods, so these tests depend on the step only.
EQUAL = Weighting(lambda n: (), lambda losses, s, **_: (jnp.ones_like(losses), s))
MEAN = from_weights(lambda n, p=None: (),
                    lambda g, s, **_: (jnp.full(g.shape[0], 1.0 / g.shape[0]), s))


def model_config(trunk="mlp", batch_norm=False):
  t = (dict(kind="mlp", hidden=(16, 8)) if trunk == "mlp" else
       dict(kind="cnn", channels=(4,), features=8, batch_norm=batch_norm))
  return ml_collections.ConfigDict(dict(arch="hard_sharing", trunk=t, head=dict(hidden=())))


def batch(seed=0, size=8, shape=(8, 8, 1), reg_mask=None):
  rng = np.random.default_rng(seed)
  return {"inputs": rng.random((size, *shape), np.float32),
          "targets": {"cls": rng.integers(0, 3, size).astype(np.int32),
                      "reg": rng.normal(size=(size, 2)).astype(np.float32)},
          "mask": {"cls": np.ones(size, bool),
                   "reg": np.ones(size, bool) if reg_mask is None else reg_mask}}


def setup(weighting=EQUAL, aggregator=None, engine="auto", trunk="mlp",
          batch_norm=False, lr=1e-2):
  model = models.build(TASKS, (8, 8, 1), **model_config(trunk, batch_norm))
  p = models.partition(model)
  method = engines.resolve(weighting, aggregator, engine, has_representation=True)
  tx = optimizer.build(ml_collections.ConfigDict(dict(name="sgd", learning_rate=lr)), 10)
  state = jax.jit(lambda: state_lib.init_state(p, tx, method, seed=0))()
  return p, method, tx, state
