"""A tiny MMoE-synthetic config for training with penalties through the loop."""

import pytest

from tests import configs_loader


@pytest.fixture
def tiny_mmoe_config(data_dir, tmp_path):
  """``make(model, penalties)``: configs/mmoe_synthetic.py on 256 examples of
  d = 8, 30 Adam steps, with ``model`` (a dict) and ``model.penalties``."""
  def make(model: dict, penalties: dict):
    c = configs_loader.load("mmoe_synthetic", "mmoe,p=0.5")
    c.data.update(dict(data_dir=data_dir, input_dim=8, num_train=256,
                       num_validation=32, num_test=64))
    c.model = dict(model, penalties=penalties)
    c.optimizer.learning_rate = 1e-2
    c.train.update(dict(num_steps=30, batch_size=32, eval_batch_size=64, log_every=30))
    c.workdir = str(tmp_path / "_".join(["run", *(f"{k}{v}" for k, v in sorted(penalties.items()))]))
    return c
  return make
