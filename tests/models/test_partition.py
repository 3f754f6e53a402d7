"""partition: every parameter in exactly one group; merge round-trips."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from mtl_jax import models, tasks as tasks_lib
from tests.models import arch_checks

TASKS = tasks_lib.from_config({
    "cls": dict(kind="multiclass", num_classes=3),
    "reg": dict(kind="regression", dim=2),
    "bin": dict(kind="binary", num_labels=4),
})


def _config(arch, trunk):
  return ml_collections.ConfigDict(dict(arch=arch, trunk=trunk, head=dict(hidden=(5,))))


TRUNKS = [dict(kind="mlp", hidden=(8, 6)),
          dict(kind="cnn", channels=(4, 8), features=6, batch_norm=True)]


@pytest.mark.parametrize("arch", ["hard_sharing", "independent"])
@pytest.mark.parametrize("trunk", TRUNKS, ids=["mlp", "cnn"])
def test_partition_is_exhaustive_and_disjoint(arch, trunk):
  model = models.build(TASKS, (8, 8, 1), **_config(arch, trunk))
  p = arch_checks.assert_partition_exhaustive(model)
  claimed = arch_checks.leaf_paths(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  assert set(p.tasks) == {"bin", "cls", "reg"}
  assert models.task_names(p) == ("bin", "cls", "reg")
  if arch == "independent":
    assert p.shared == {}
  else:
    assert jax.tree.leaves(p.shared)
  # Batch statistics are in `rest`, never among the parameters.
  if trunk["kind"] == "cnn":
    rest = arch_checks.leaf_paths(p.rest)
    assert any("mean" in path for path in rest)
    assert not any("mean" in path for path in claimed)


def test_merge_round_trip_gives_same_outputs():
  model = models.build(TASKS, (8, 8, 1), **_config("hard_sharing", TRUNKS[1]))
  x = jnp.asarray(np.random.default_rng(0).random((3, 8, 8, 1), np.float32))
  expected = model(x)
  p = models.partition(model)
  merged = models.merge(p.graphdef, models.params_of(p), p.rest)
  out = merged(x)
  for name in expected:
    np.testing.assert_array_equal(out[name], expected[name])
  assert out["cls"].shape == (3, 3) and out["reg"].shape == (3, 2)
  assert out["bin"].shape == (3, 4)


class _Leaky(nnx.Module):
  def __init__(self):
    rngs = nnx.Rngs(0)
    self.shared = nnx.Linear(2, 2, rngs=rngs)
    self.tasks = nnx.Dict({"a": nnx.Linear(2, 1, rngs=rngs)})
    self.orphan = nnx.Linear(2, 2, rngs=rngs)


def test_unclaimed_parameter_raises_with_its_path():
  with pytest.raises(ValueError, match=r"orphan/kernel"):
    models.partition(_Leaky())


def test_model_without_tasks_raises():
  class NoTasks(nnx.Module):
    def __init__(self):
      self.shared = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="no `tasks` attribute"):
    models.partition(NoTasks())


def test_unknown_architecture_lists_valid_names():
  with pytest.raises(ValueError, match="hard_sharing"):
    models.build(TASKS, (4,), **_config("hard_shareing", TRUNKS[0]))
