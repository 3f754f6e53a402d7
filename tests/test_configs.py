"""Every config in configs/ builds and trains 2 steps (on shrunken data)."""

import pytest

from mtl_jax.train import loop
from tests import configs_loader

_SIZES = {"num_train": 64, "num_validation": 32, "num_test": 32, "image_size": 16}


@pytest.mark.parametrize("name", configs_loader.names())
def test_config_builds_and_runs_two_steps(name, data_dir, tmp_path):
  c = configs_loader.load(name)
  c.data.data_dir = data_dir
  for key, value in _SIZES.items():
    if key in c.data:
      c.data[key] = value
  if c.model.get("trunk", {}).get("kind") == "segnet":  # two 2x2 pools fit 16x16
    c.model.trunk.update(dict(channels=(4, 8), layers=(1, 1)))
  # The gradient-cosine probe (a second compiled program) is tested in
  # tests/train; here it would only double each config's compile time.
  c.train.update(dict(num_steps=2, batch_size=8, eval_batch_size=16,
                      checkpoint_every=0, log_every=1, log_cosine=False))
  result = loop.train(c, workdir=str(tmp_path / name), progress=False)
  assert int(result.state.step) == 2
  assert result.compilations == 1
  assert set(result.evaluation["test"]) == set(c.tasks)
