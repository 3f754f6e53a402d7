"""Shared fixtures: tiny embedded datasets generated once per test session."""

import pytest


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tensorflow_datasets"))


@pytest.fixture(scope="session")
def sprites_config(data_dir):
  """A tiny sprites config (16x16 images, 96/40/30 examples)."""
  return {"name": "sprites", "data_dir": data_dir, "image_size": 16,
          "num_train": 96, "num_validation": 40, "num_test": 30}
