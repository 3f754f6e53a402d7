"""The run every reliability scenario trains: tiny sprites, stateful methods.

DWA keeps weighting state, GradVac keeps aggregation state and draws random
task orders from the step key, so a resumed run is only bit-identical if the
checkpoint carries all of them, the RNG key and the data position.
"""

import os

import jax
import numpy as np

from mtl_jax.train import logger
from tests import configs_loader

TASKS = ("shape", "x")  # one classification and one regression task
NUM_STEPS = 30
EVERY = 10


def tiny_config(data_dir: str, workdir: str):
  """tests/conftest.py's ``tiny_sprites_config`` with stateful methods."""
  c = configs_loader.load("sprites", "mlp")
  c.data.update(dict(data_dir=data_dir, image_size=16, num_train=256,
                     num_validation=64, num_test=128))
  c.tasks = {k: c.tasks[k] for k in TASKS}
  c.model.trunk.hidden = (32, 16)
  c.optimizer.learning_rate = 5e-3
  c.method.update(dict(weighting="dwa", aggregation="gradvac"))
  c.train.update(dict(num_steps=NUM_STEPS, batch_size=32, eval_batch_size=64,
                      log_every=1, checkpoint_every=EVERY, max_to_keep=5,
                      tensorboard=False))
  c.workdir = workdir
  return c


def cli_args(data_dir: str, workdir: str) -> list[str]:
  """``mtl-jax train`` arguments for :func:`tiny_config` (via tiny_config.py)."""
  here = os.path.dirname(os.path.abspath(__file__))
  return ["mtl-jax", "train", f"--config={here}/tiny_config.py:{data_dir}",
          f"--workdir={workdir}", "--noprogress"]


def train_records(workdir: str) -> list[dict]:
  return [r for r in logger.read(os.path.join(workdir, "metrics.jsonl"))
          if r["split"] == "train"]


def assert_bit_identical(a, b) -> None:
  """Same tree structure, dtypes and bits in every leaf."""
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for path, x, y in zip(jax.tree_util.tree_leaves_with_path(a),
                        jax.tree.leaves(a), jax.tree.leaves(b)):
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape, path[0]
    assert x.tobytes() == y.tobytes(), jax.tree_util.keystr(path[0])
