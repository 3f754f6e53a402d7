"""The ``toy`` and ``pareto_mtl`` datasets: the problems' surfaces as data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import data
from mtl_jax.data import pareto_mtl, toy

SIZES = {"num_train": 48, "num_validation": 16, "num_test": 16}


@pytest.fixture(scope="module")
def toy_config(data_dir):
  return {"name": "toy", "data_dir": data_dir, "scale_l1": 0.1, **SIZES}


@pytest.fixture(scope="module")
def pareto_config(data_dir):
  return {"name": "pareto_mtl", "data_dir": data_dir, "input_dim": 5,
          "num_front": 7, **SIZES}


def _split(config, split):
  """All of ``split`` in one batch: inputs, targets, mask."""
  n = data.num_examples(config, split)
  return next(data.build(config, split, batch_size=n, seed=0, shuffle=False,
                         drop_remainder=False, num_epochs=1))


def _toy_losses(theta, scale_l1):
  return np.asarray(jax.vmap(toy.toy_losses, in_axes=(0, None))(
      jnp.asarray(theta), scale_l1))


def test_toy_declares_two_regression_tasks_on_theta(toy_config):
  assert data.input_shape(toy_config) == (2,)
  tasks = data.dataset_tasks(toy_config)
  assert sorted(tasks) == ["l1", "l2"]
  assert all(t["kind"] == "regression" and t["dim"] == 1 for t in tasks.values())


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_toy_targets_are_the_losses_at_the_stored_points(toy_config, split):
  batch = _split(toy_config, split)
  theta = batch["inputs"]
  assert theta.shape == (SIZES[f"num_{split}"], 2) and theta.dtype == np.float32
  assert np.abs(theta).max() <= 10.0 and theta.std(0).min() > 3.0  # U(-10, 10)^2
  expected = _toy_losses(theta, 0.1)
  np.testing.assert_allclose(batch["targets"]["l1"], expected[:, 0], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(batch["targets"]["l2"], expected[:, 1], rtol=1e-6, atol=1e-6)


# The starting points of shared/reference/BENCHMARKS.md, in order.
@pytest.mark.parametrize("split, points", [
    ("starts", [(-8.5, 7.5), (0, 0), (9, 9), (-7.5, -0.5), (9, -1)]),
    ("cagrad_starts", [(-8.5, 7.5), (-8.5, -5), (9, 9)])])
def test_toy_start_splits_hold_exactly_the_reference_starts(toy_config, split, points):
  batch = _split(toy_config, split)
  np.testing.assert_array_equal(batch["inputs"], np.asarray(points, np.float32))
  expected = _toy_losses(np.asarray(points, np.float32), 0.1)
  np.testing.assert_allclose(batch["targets"]["l1"], expected[:, 0], rtol=1e-6)
  np.testing.assert_allclose(batch["targets"]["l2"], expected[:, 1], rtol=1e-6)


def test_pareto_targets_are_the_objectives_at_the_stored_points(pareto_config):
  assert data.input_shape(pareto_config) == (5,)
  assert sorted(data.dataset_tasks(pareto_config)) == ["f1", "f2"]
  batch = _split(pareto_config, "train")
  x = batch["inputs"]
  assert x.shape == (48, 5) and np.abs(x).max() <= 0.5 and x.std() > 0.2
  expected = np.asarray(pareto_mtl.pareto_losses(jnp.asarray(x)))
  np.testing.assert_allclose(batch["targets"]["f1"], expected[:, 0], rtol=1e-6)
  np.testing.assert_allclose(batch["targets"]["f2"], expected[:, 1], rtol=1e-6)


def test_pareto_front_split_holds_exactly_the_pareto_set(pareto_config):
  batch = _split(pareto_config, "front")
  x = batch["inputs"]
  np.testing.assert_array_equal(x, np.asarray(pareto_mtl.pareto_set(7, 5)))
  c = 1 / np.sqrt(5)
  np.testing.assert_allclose(x[[0, -1], 0], [-c, c], rtol=1e-6)
  front = np.stack([batch["targets"]["f1"], batch["targets"]["f2"]], -1)
  np.testing.assert_allclose(front, np.asarray(pareto_mtl.pareto_front(7, 5)), rtol=1e-6)
  np.testing.assert_allclose(front[0], [1 - np.exp(-4), 0], atol=1e-6)
  assert np.all(np.diff(front[:, 0]) < 0) and np.all(np.diff(front[:, 1]) > 0)


@pytest.mark.parametrize("module, options", [
    (toy, dict(toy.DEFAULTS, **SIZES)),
    (pareto_mtl, dict(pareto_mtl.DEFAULTS, **SIZES))])
def test_generation_is_deterministic_by_seed_and_split(module, options):
  first, again = (module.generate(options, "train") for _ in range(2))
  for key in first:
    np.testing.assert_array_equal(first[key], again[key])
  field = "theta" if module is toy else "x"
  other_seed = module.generate(dict(options, seed=1), "train")[field]
  other_split = module.generate(options, "validation")[field]
  assert not np.array_equal(first[field][:16], other_seed[:16])
  assert not np.array_equal(first[field][:16], other_split)


def test_stored_data_equals_generate(toy_config):
  options = data.base.resolve_options(data.get_spec("toy"), toy_config)
  expected = toy.generate(options, "test")
  batch = _split(toy_config, "test")
  np.testing.assert_array_equal(batch["inputs"], expected["theta"])
  np.testing.assert_array_equal(batch["targets"]["l2"], expected["l2"])


@pytest.mark.parametrize("config, error, match", [
    ({"name": "toy", "bound": 0.0}, ValueError, "toy: bound must be > 0"),
    ({"name": "toy", "scale_l1": -1.0}, ValueError, "toy: scale_l1 must be > 0"),
    ({"name": "toy", "num_validation": 0}, ValueError,
     "toy: num_validation must be >= 1, got 0"),
    ({"name": "toy", "dim": 3}, ValueError, r"unknown option\(s\) \['dim'\]"),
    ({"name": "pareto_mtl", "input_dim": 0}, ValueError,
     "pareto_mtl: input_dim must be >= 1, got 0"),
    ({"name": "pareto_mtl", "num_front": 1}, ValueError,
     "pareto_mtl: num_front must be >= 2"),
    ({"name": "pareto_mtl", "num_train": 2.5}, TypeError,
     "option 'num_train' must be an integer"),
])
def test_bad_options_raise_clear_errors(config, error, match, tmp_path):
  with pytest.raises(error, match=match):
    data.num_examples(dict(config, data_dir=str(tmp_path)), "train")


@pytest.mark.parametrize("name, split", [("toy", "front"), ("pareto_mtl", "starts")])
def test_unknown_split_lists_the_splits(name, split, data_dir):
  with pytest.raises(ValueError, match=f"no split '{split}'; its splits are"):
    data.num_examples({"name": name, "data_dir": data_dir, **SIZES}, split)
