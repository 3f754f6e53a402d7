"""Shared fixtures: a tiny embedded dataset and small configs.

Compiled XLA programs are kept in a persistent cache (``.jax_cache/`` at the
repository root, ignored by git) shared by the test workers and by the
processes the tests start (the settings travel as environment variables):
many tests compile the same programs (parameter initialisers, small train
steps), and a second compile of one is a file read. The cache changes no
number: it stores the compiled program, not results.
"""

import os

_CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax_cache")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position

# In case a plugin imported jax before the variables above were set.
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

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
