"""Dense heads: bilinear resizing, the conv and ASPP heads, head building and refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mtl_jax import models, tasks as tasks_lib
from mtl_jax.models.dense_heads import (ASPPHead, ConvHead, interpolation_matrix,
                                        resize_bilinear)
from mtl_jax.models.heads import head_options
from tests.models import dense_checks as d


def _bilinear_reference(x, size, align_corners):
  """Per-pixel bilinear interpolation in float64 (PyTorch's definition)."""
  b, h, w, c = x.shape
  out_h, out_w = size

  def src(i, n_in, n_out):
    if align_corners:
      return i * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return min(max((i + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1)
  out = np.zeros((b, out_h, out_w, c))
  for i in range(out_h):
    y = src(i, h, out_h)
    y0 = int(np.floor(y)); y1 = min(y0 + 1, h - 1); fy = y - y0
    for j in range(out_w):
      xx = src(j, w, out_w)
      x0 = int(np.floor(xx)); x1 = min(x0 + 1, w - 1); fx = xx - x0
      out[:, i, j] = ((1 - fy) * (1 - fx) * x[:, y0, x0] + (1 - fy) * fx * x[:, y0, x1]
                      + fy * (1 - fx) * x[:, y1, x0] + fy * fx * x[:, y1, x1])
  return out


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("size_in,size_out", [((2, 3), (16, 24)), ((5, 4), (9, 7)),
                                              ((1, 1), (4, 4))])
def test_resize_bilinear_matches_the_per_pixel_formula(align_corners, size_in, size_out):
  x = np.random.default_rng(0).normal(size=(2, *size_in, 3))
  got = resize_bilinear(jnp.asarray(x, jnp.float32), size_out, align_corners)
  np.testing.assert_allclose(got, _bilinear_reference(x, size_out, align_corners),
                             rtol=1e-5, atol=1e-5)


def test_interpolation_rows_sum_to_one_and_identity_when_equal():
  m = interpolation_matrix(5, 11)
  np.testing.assert_allclose(m.sum(1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(interpolation_matrix(4, 4), np.eye(4))
  x = jnp.ones((1, 4, 4, 2))
  assert resize_bilinear(x, (4, 4)) is x


def test_conv_head_is_conv3x3_then_conv1x1_and_resizes():
  head = ConvHead(6, 5, (8, 12), rngs=nnx.Rngs(0))
  z = jnp.asarray(np.random.default_rng(1).normal(size=(2, 2, 3, 6)), jnp.float32)
  y = head(z)
  assert y.shape == (2, 8, 12, 5)
  # Reference: the two convolutions by hand (SAME padding), then the resize.
  k3, b3 = np.asarray(head.conv.kernel[...]), np.asarray(head.conv.bias[...])
  k1, b1 = np.asarray(head.out.kernel[...]), np.asarray(head.out.bias[...])
  zp = np.pad(np.asarray(z, np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  hidden = np.zeros((2, 2, 3, 6))
  for i in range(2):
    for j in range(3):
      hidden[:, i, j] = np.einsum("bklc,klcd->bd", zp[:, i:i + 3, j:j + 3], k3) + b3
  small = hidden @ k1[0, 0] + b1
  np.testing.assert_allclose(y, _bilinear_reference(small, (8, 12), True), rtol=1e-4,
                             atol=1e-5)


def test_aspp_head_shapes_and_batch_statistics():
  head = ASPPHead(8, 3, (16, 16), rates=(1, 2, 3), width=4, rngs=nnx.Rngs(0))
  assert len(head.aspp.branches) == 4  # 1x1 and one 3x3 per rate (+ the pooling branch)
  assert [b.conv.kernel_dilation for b in list(head.aspp.branches)[1:]] == [
      (1, 1), (2, 2), (3, 3)]
  assert head.aspp.project.conv.in_features == 5 * 4
  z = jnp.asarray(np.random.default_rng(0).normal(size=(2, 2, 2, 8)), jnp.float32)
  assert head(z, train=True).shape == (2, 16, 16, 3)


def test_head_options_are_checked():
  with pytest.raises(ValueError, match="head.dense must be one of"):
    head_options({"dense": "fpn"}, "HardSharing")
  with pytest.raises(ValueError, match="head has unknown option"):
    head_options({"dense_channels": 3}, "HardSharing")
  with pytest.raises(ValueError, match="head.aspp_width"):
    head_options({"aspp_width": 0}, "HardSharing")


@pytest.mark.parametrize("trunk,kind", [
    (dict(kind="mlp", hidden=(8,)), "mlp"),
    (dict(kind="cnn", channels=(4,), features=8), "cnn"),
    (dict(kind="resnet", blocks=(1,), width=4), "resnet")])
def test_dense_task_on_a_vector_trunk_is_refused(trunk, kind):
  with pytest.raises(ValueError) as err:
    models.build(d.TASKS, d.SHAPE, arch="hard_sharing", trunk=trunk)
  message = str(err.value)
  assert "\n" not in message and f"'{kind}'" in message and "'depth'" in message


def test_per_example_task_on_a_map_pools_it():
  model = models.build(d.TASKS, d.SHAPE, arch="hard_sharing",
                       trunk=dict(kind="segnet", channels=(4,), layers=(1,)))
  z = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 16, 4)), jnp.float32)
  head = model.tasks["cls"]
  expected = np.asarray(z).mean(axis=(1, 2)) @ np.asarray(head.out.kernel[...]) \
      + np.asarray(head.out.bias[...])
  np.testing.assert_allclose(head(z), expected, rtol=1e-5, atol=1e-6)


def _libmtl_deeplab_head_count(in_ch, out, width=256, rates=3):
  """LibMTL's DeepLabHead, module by module: bias-free convs with BN (2 per
  channel), the classifier with a bias."""
  conv_bn = lambda a, b, k: k * k * a * b + 2 * b
  aspp = conv_bn(in_ch, width, 1) + rates * conv_bn(in_ch, width, 3) + conv_bn(in_ch, width, 1)
  aspp += conv_bn((rates + 2) * width, width, 1)
  return aspp + conv_bn(width, width, 3) + width * out + out


def test_libmtl_nyuv2_deeplab_model_shapes_and_head_size():
  tasks = tasks_lib.from_config({"segmentation": dict(kind="segmentation", num_classes=13),
                                 "depth": dict(kind="depth"), "normal": dict(kind="normals")})

  counts = {}

  def run(x):
    model = models.build(tasks, (288, 384, 3), arch="hard_sharing",
                         trunk=dict(kind="dilated_resnet"), head=dict(dense="aspp"))
    counts.update({name: sum(int(np.prod(p.shape)) for p in
                             jax.tree.leaves(nnx.state(head, nnx.Param)))
                   for name, head in model.tasks.items()})
    return model.encode(x), model(x)
  z, out = jax.eval_shape(run, jax.ShapeDtypeStruct((2, 288, 384, 3), jnp.float32))
  assert z.shape == (2, 36, 48, 2048)
  assert {k: v.shape for k, v in out.items()} == {
      "segmentation": (2, 288, 384, 13), "depth": (2, 288, 384, 1),
      "normal": (2, 288, 384, 3)}
  assert counts == {
      "segmentation": _libmtl_deeplab_head_count(2048, 13),
      "depth": _libmtl_deeplab_head_count(2048, 1),
      "normal": _libmtl_deeplab_head_count(2048, 3)}
