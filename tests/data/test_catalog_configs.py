"""Every config in configs/catalog/ is valid and trains on mocked data.

The catalog configs need TFDS data (absent here), so they live outside
configs/*.py (which tests/test_configs.py trains on real embedded data);
``tfds.testing.mock_data`` stands in for the data. Each config is checked
whole (``validate.check_config`` under the mock: tasks against the data, the
method, the optimizer, the data prepared; the model built abstractly) and reads a batch of its data
section; then each distinct one trains 2 steps with tiny overrides (16x16
images, a one-block trunk: XLA compile time grows with the layers, not with
the data; CelebA on 4 of its 40 attributes) to keep the test fast
(multi_fashion is multi_mnist with another ``data.name``, smallnorb:official
is smallnorb without ``instance``).
"""

import importlib.util
import pathlib

from flax import nnx
import pytest
import tensorflow_datasets as tfds

from mtl_jax import data, models, tasks as tasks_lib
from mtl_jax.train import loop, validate

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


CONFIGS = [(n, None) for n in NAMES] + [("smallnorb", "official")]
TRAINED = ["celeb_a", "dsprites", "multi_mnist", "shapes3d", "smallnorb"]


def _mocked(num_examples=24):
  return tfds.testing.mock_data(num_examples=num_examples,
                                policy=tfds.testing.MockPolicy.USE_CODE)


@pytest.mark.parametrize("name, arg", CONFIGS)
def test_catalog_config_is_valid_and_reads_its_data(name, arg, tmp_path):
  c = load(name, arg)
  c.data.data_dir = str(tmp_path)
  input_shape = data.input_shape(c.data)
  tasks = tasks_lib.from_config(c.tasks)
  nnx.eval_shape(lambda: models.build(tasks, input_shape, seed=0, **c.model))
  with _mocked():
    validate.check_config(c)  # tasks against the data, method, optimizer, data there
    batch = next(data.build(dict(c.data.to_dict(), tasks=sorted(c.tasks)), "train",
                            batch_size=4, seed=0, shuffle=True, drop_remainder=True))
  assert batch["inputs"].shape == (4,) + input_shape
  assert sorted(batch["targets"]) == sorted(c.tasks)


@pytest.mark.parametrize("name", TRAINED)
def test_catalog_config_trains_two_steps_on_mock_data(name, tmp_path):
  c = load(name)
  c.data.data_dir = str(tmp_path / "tfds")
  if "image_size" in c.data:
    c.data.image_size = 16
  c.model.trunk.update(dict(channels=(4,), features=8))
  if name == "celeb_a":
    c.tasks = {k: c.tasks[k] for k in list(c.tasks)[:4]}
  c.train.update(dict(num_steps=2, batch_size=8, eval_batch_size=16,
                      checkpoint_every=0, eval_every=0, log_every=1, tensorboard=False))
  with _mocked():
    result = loop.train(c, workdir=str(tmp_path / "run"), progress=False)
  assert int(result.state.step) == 2
  assert result.compilations == 1
  assert set(result.evaluation["test"]) == set(c.tasks)
