"""ResNet trunks: ResNet-18's parameter count, shapes, stages, BN state, training."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from mtl_jax import models
from mtl_jax.models.resnet import ResNet
from tests.models import arch_checks
from tests.train import helpers as h


def _num_params(module_fn) -> int:
  abstract = nnx.eval_shape(module_fn)
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))


def test_resnet18_has_the_reference_parameter_count():
  """PyTorch's CIFAR ResNet-18 (conv 3x3 stem, no conv bias, BN scale+shift)
  has 11,173,962 parameters with its 512 -> 10 classifier (5,130 of them)."""
  count = _num_params(lambda: ResNet((32, 32, 3), rngs=nnx.Rngs(0)))
  assert count == 11_173_962 - 5_130
  # The ImageNet stem: 7x7x3x64 instead of 3x3x3x64 weights.
  imagenet = _num_params(lambda: ResNet((64, 64, 3), stem="imagenet", rngs=nnx.Rngs(0)))
  assert imagenet == count + (49 - 9) * 3 * 64


@pytest.mark.parametrize("stem,size,spatial", [("cifar", 16, (16, 8, 4, 2)),
                                                ("imagenet", 32, (8, 4, 2, 1))])
def test_stages_halve_the_resolution_and_end_pooled(stem, size, spatial):
  net = ResNet((size, size, 3), blocks=(1, 1, 1, 1), width=4, stem=stem, rngs=nnx.Rngs(0))
  x = jnp.ones((2, size, size, 3))
  shapes = []
  for i in range(net.num_stages):
    x = net.stage(i, x, train=True)
    shapes.append(x.shape)
  assert shapes[:3] == [(2, s, s, 4 * 2 ** i) for i, s in enumerate(spatial[:3])]
  assert shapes[3] == (2, 32) and net.out_features == 32
  assert [net.stage_width(i) for i in range(4)] == [4, 8, 16, 32]
  y = net(jnp.ones((2, size, size, 3)), train=True)
  np.testing.assert_allclose(y, x, rtol=1e-6)


def test_projection_only_where_shape_changes():
  net = ResNet((8, 8, 3), blocks=(2, 2), width=4, rngs=nnx.Rngs(0))
  assert net.stages[0][0].project is None and net.stages[0][1].project is None
  assert net.stages[1][0].project is not None and net.stages[1][1].project is None


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="stem 'vgg'"):
    ResNet((8, 8, 3), stem="vgg", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"\(H, W, C\)"):
    ResNet((64,), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="blocks"):
    ResNet((8, 8, 3), blocks=(2, 0), rngs=nnx.Rngs(0))


def _hard_sharing():
  cfg = ml_collections.ConfigDict(dict(
      arch="hard_sharing", trunk=dict(kind="resnet", blocks=(1, 1), width=4),
      head=dict(hidden=())))
  return models.build(h.TASKS, (8, 8, 1), **cfg)


def test_hard_sharing_with_a_resnet_trunk_trains_and_updates_batch_stats():
  model = _hard_sharing()
  p = arch_checks.assert_partition_exhaustive(model)
  assert jax.tree.leaves(p.rest), "batch-norm statistics expected in rest"
  _, states, _ = arch_checks.train_two_steps(model, "mgda", "representation",
                                             fast_compile=True)
  arch_checks.assert_moved(states[0].params, states[-1].params, ("shared", "tasks"))
  moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), states[0].rest, states[-1].rest)
  assert all(jax.tree.leaves(moved)), "running statistics did not update"
