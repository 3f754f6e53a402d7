"""Dense tasks across the architectures: output shapes, groups and refusals
(the engines on a dense model: test_dense_engines.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mtl_jax import models
from mtl_jax.models.experts import mix
from tests.models import arch_checks, dense_checks as d

SEGNET = dict(kind="segnet", channels=(4, 8), layers=(1, 1))
DILATED = dict(kind="dilated_resnet", depth=18, width=2)
ASPP = dict(dense="aspp", aspp_rates=(1, 2, 3), aspp_width=4)

DENSE_ARCHS = {
    "hard_sharing_segnet": dict(arch="hard_sharing", trunk=SEGNET),
    "hard_sharing_dilated_aspp": dict(arch="hard_sharing", trunk=DILATED, head=ASPP),
    "hard_sharing_relu_head": dict(arch="hard_sharing", trunk=SEGNET,
                                   head=dict(dense_act="relu", dense_width=6)),
    "independent_segnet": dict(arch="independent", trunk=SEGNET),
    "mtan_segnet": dict(arch="mtan", trunk=SEGNET),
    "cross_stitch_segnet": dict(arch="cross_stitch", trunk=SEGNET),
    "cross_stitch_dilated": dict(arch="cross_stitch", trunk=DILATED),
    "soft_sharing_segnet": dict(arch="soft_sharing", trunk=SEGNET),
    "soft_sharing_dilated": dict(arch="soft_sharing", trunk=DILATED),
    "mmoe_segnet_experts": dict(arch="mmoe", experts=dict(num=2, trunk=SEGNET)),
    "dselect_k_segnet_experts": dict(arch="dselect_k", experts=dict(num=3, trunk=SEGNET)),
}


@pytest.mark.parametrize("name", sorted(DENSE_ARCHS))
def test_output_shapes_and_groups(name):
  options = DENSE_ARCHS[name]

  def run(x):
    return models.build(d.TASKS, d.SHAPE, **options)(x, train=True)
  out = jax.eval_shape(run, jax.ShapeDtypeStruct((2, *d.SHAPE), jnp.float32))
  assert {k: v.shape for k, v in out.items()} == d.expected_shapes(2)
  arch_checks.assert_partition_exhaustive(
      nnx.eval_shape(lambda: models.build(d.TASKS, d.SHAPE, **options)))


def test_hard_sharing_encode_is_the_feature_map():
  def run(x):
    model = models.build(d.TASKS, d.SHAPE, arch="hard_sharing", trunk=DILATED, head=ASPP)
    z = model.encode(x)
    return z, model.decode(z)
  z, out = jax.eval_shape(run, jax.ShapeDtypeStruct((2, *d.SHAPE), jnp.float32))
  assert z.shape == (2, 2, 2, 16)  # stride 8; ResNet-18: 8 * width channels
  assert {k: v.shape for k, v in out.items()} == d.expected_shapes(2)


def test_experts_mix_feature_maps_per_example():
  rng = np.random.default_rng(0)
  weights, maps = rng.random((3, 2)), rng.normal(size=(2, 3, 4, 4, 5))
  np.testing.assert_allclose(
      mix(jnp.asarray(weights, jnp.float32), jnp.asarray(maps, jnp.float32)),
      np.einsum("be,ebhwc->bhwc", weights, maps), rtol=1e-5, atol=1e-6)
  model = nnx.eval_shape(lambda: models.build(d.TASKS, d.SHAPE, arch="mmoe",
                                              experts=dict(num=2, trunk=SEGNET)))
  # The experts are stacked SegNets (a leading expert axis), shared by all tasks.
  kernel = model.shared.encoder[0][0].conv.kernel
  assert kernel.shape == (2, 3, 3, 3, 4)


def test_cross_stitch_mixes_segnet_stages():
  model = nnx.eval_shape(lambda: models.build(d.TASKS, d.SHAPE, arch="cross_stitch",
                                              trunk=SEGNET))
  assert model.cross["alpha"].shape == (4, 4, 4)  # 2 encoder + 2 decoder stages, K = 4


@pytest.mark.parametrize("arch,options", [
    ("mmoe", {}), ("dselect_k", dict(experts=dict(num=2, hidden=(4,)))),
    ("cgc", {}), ("ple", {}),
    ("branching", {}), ("hierarchical", dict(trunk=dict(kind="cnn", channels=(4,)))),
    ("task_conv", dict(trunk=dict(kind="cnn", channels=(4,)))),
    ("task_encoders", dict(trunk=dict(kind="mlp", hidden=(8,)))),
    ("cross_stitch", dict(trunk=SEGNET, sluice=True)),
    ("mtan", dict(trunk=dict(kind="mlp", hidden=(8,)))),
])
def test_architectures_without_per_pixel_outputs_refuse_dense_tasks(arch, options):
  cls = models.REGISTRY.lookup(arch)
  with pytest.raises(ValueError) as err:
    models.build(d.TASKS, d.SHAPE, arch=arch, **options)
  message = str(err.value)
  assert "\n" not in message and cls.__name__ in message
  assert any(f"'{t.name}'" in message for t in d.DENSE_ONLY), message


@pytest.mark.parametrize("arch,trunk", [("hard_sharing", dict(kind="cnn", channels=(4,))),
                                        ("cross_stitch", dict(kind="mlp", hidden=(8,))),
                                        ("soft_sharing", dict(kind="mlp", hidden=(8,)))])
def test_vector_trunks_refuse_dense_tasks(arch, trunk):
  with pytest.raises(ValueError, match=f"'seg'.*trunk kind '{trunk['kind']}'"):
    models.build(d.SEG, d.SHAPE, arch=arch, trunk=trunk)
