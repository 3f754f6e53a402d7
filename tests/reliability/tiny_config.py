"""``mtl-jax train --config=tests/reliability/tiny_config.py:DATA_DIR``."""

from tests.reliability import common


def get_config(data_dir: str):
  return common.tiny_config(data_dir, "runs/reliability")
