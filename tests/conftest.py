"""Shared fixtures: a tiny embedded dataset and small configs."""

import pytest

from tests import configs_loader


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """One data directory per test worker; datasets are generated on first use."""
  return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture
def tiny_sprites_config(data_dir, tmp_path):
  """configs/sprites.py:mlp shrunk to a few seconds of work."""
  c = configs_loader.load("sprites", "mlp")
  c.data.update(dict(data_dir=data_dir, image_size=16, num_train=256,
                     num_validation=64, num_test=128))
  c.model.trunk.hidden = (32, 16)
  c.optimizer.learning_rate = 5e-3
  c.train.update(dict(num_steps=40, batch_size=32, eval_batch_size=64, log_every=1,
                      checkpoint_every=10))
  c.workdir = str(tmp_path / "run")
  return c
