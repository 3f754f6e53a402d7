"""One short real train run and one tiny compare run, shared by the report tests."""

import pytest

from tests import configs_loader


def _tiny_config(data_dir, workdir):
  """configs/sprites.py:mlp shrunk like tests/conftest.py:tiny_sprites_config."""
  c = configs_loader.load("sprites", "mlp")
  c.data.update(dict(data_dir=data_dir, image_size=16, num_train=256,
                     num_validation=64, num_test=128))
  c.model.trunk.hidden = (32, 16)
  c.optimizer.learning_rate = 5e-3
  c.train.update(dict(num_steps=30, batch_size=32, eval_batch_size=64, log_every=1,
                      eval_every=15, checkpoint_every=0))
  c.workdir = str(workdir)
  return c


@pytest.fixture(scope="session")
def sprites_run(data_dir, tmp_path_factory):
  """30 steps of the 5-task tiny sprites config with MGDA (logs cos/<a>/<b>)."""
  from mtl_jax.train import loop
  c = _tiny_config(data_dir, tmp_path_factory.mktemp("report") / "mgda-run")
  c.method.aggregation = "mgda"
  loop.train(c, progress=False, eval_splits=("test",))
  return c.workdir


@pytest.fixture(scope="session")
def compare_dir(data_dir, tmp_path_factory):
  """``compare`` on 2 tasks (shape, x): single-task, equal and mgda, 5 steps each."""
  from mtl_jax.train import compare
  c = _tiny_config(data_dir, tmp_path_factory.mktemp("report") / "cmp")
  c.tasks = {name: c.tasks[name] for name in ("shape", "x")}
  c.train.update(dict(num_steps=5, eval_every=0))
  compare.compare(c, ["equal", "mgda"], progress=False)
  return c.workdir
