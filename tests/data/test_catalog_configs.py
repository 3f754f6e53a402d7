"""Every config in configs/catalog/ builds and trains 2 steps on mocked data.

The catalog configs need TFDS data (absent here), so they live outside
configs/*.py (which tests/test_configs.py trains on real embedded data);
``tfds.testing.mock_data`` stands in for the data here.
"""

import importlib.util
import pathlib

import pytest
import tensorflow_datasets as tfds

from mtl_jax.train import loop

CATALOG_DIR = pathlib.Path(__file__).resolve().parents[2] / "configs" / "catalog"
NAMES = sorted(p.stem for p in CATALOG_DIR.glob("*.py") if not p.stem.startswith("_"))


def load(name: str, arg=None):
  """``configs/catalog/<name>.py:get_config(arg)``, loaded by path as the CLI does."""
  spec = importlib.util.spec_from_file_location(f"catalog_{name}", CATALOG_DIR / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config() if arg is None else module.get_config(arg)


def test_every_catalog_dataset_has_a_config():
  assert NAMES == ["celeb_a", "dsprites", "multi_fashion", "multi_mnist", "shapes3d",
                   "smallnorb"]


@pytest.mark.parametrize("name, arg", [(n, None) for n in NAMES] + [("smallnorb", "official")])
def test_catalog_config_trains_two_steps_on_mock_data(name, arg, tmp_path):
  c = load(name, arg)
  c.data.data_dir = str(tmp_path / "tfds")
  if "image_size" in c.data:
    c.data.image_size = 16
  c.train.update(dict(num_steps=2, batch_size=8, eval_batch_size=16,
                      checkpoint_every=0, eval_every=0, log_every=1))
  with tfds.testing.mock_data(num_examples=24, policy=tfds.testing.MockPolicy.USE_CODE):
    result = loop.train(c, workdir=str(tmp_path / "run"), progress=False)
  assert int(result.state.step) == 2
  assert result.compilations == 1
  assert set(result.evaluation["test"]) == set(c.tasks)
