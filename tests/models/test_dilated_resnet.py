"""Dilated ResNet trunk: output stride, dilation pattern (LibMTL's), parameter count."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mtl_jax.models.dilated_resnet import DilatedResNet
from mtl_jax.models.trunks import build_trunk


def _param_count(model):
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _resnet50_count(width=64, c_in=3):
  """torchvision's ResNet-50 without its classifier, layer by layer:
  conv weights (no bias) and 2 BN parameters per channel."""
  bn = lambda c: 2 * c
  total = 7 * 7 * c_in * width + bn(width)
  in_ch = width
  for i, blocks in enumerate((3, 4, 6, 3)):
    p = width * 2 ** i
    for j in range(blocks):
      total += in_ch * p + bn(p) + 9 * p * p + bn(p) + p * 4 * p + bn(4 * p)
      if j == 0:
        total += in_ch * 4 * p + bn(4 * p)
      in_ch = 4 * p
  return total


def test_resnet50_parameter_count():
  model = nnx.eval_shape(lambda: DilatedResNet((64, 64, 3), rngs=nnx.Rngs(0)))
  assert _resnet50_count() == 23_508_032  # torchvision: 25,557,032 - fc 2,049,000
  assert _param_count(model) == _resnet50_count()
  assert model.out_features == 2048


def _libmtl_dilations(blocks, basic, dilate):
  """LibMTL's ``_nostride_dilate``: per block, the dilations of its 3x3 convs.

  In a dilated stage (``dilate`` = 2 or 4) the conv that had stride 2 (the
  first block's first 3x3) gets ``dilate // 2``, every other 3x3 ``dilate``.
  """
  out = []
  for j in range(blocks):
    if basic:
      out.append((dilate // 2 if j == 0 and dilate > 1 else dilate, dilate))
    else:
      out.append((dilate // 2 if j == 0 and dilate > 1 else dilate,))
  return tuple(out)


@pytest.mark.parametrize("depth,basic,blocks", [(18, True, (2, 2, 2, 2)),
                                                (50, False, (3, 4, 6, 3))])
@pytest.mark.parametrize("output_stride,dilates", [(8, (1, 1, 2, 4)), (16, (1, 1, 1, 2))])
def test_dilation_pattern_is_libmtls(depth, basic, blocks, output_stride, dilates):
  model = nnx.eval_shape(lambda: DilatedResNet((32, 32, 3), depth=depth, width=2,
                                               output_stride=output_stride,
                                               rngs=nnx.Rngs(0)))
  assert model.dilations == tuple(_libmtl_dilations(n, basic, d)
                                  for n, d in zip(blocks, dilates))
  # No convolution of a dilated stage has a stride; each first block projects.
  for i, d in enumerate(dilates):
    for block in model.stages[i]:
      convs = [block.conv1, block.conv2] + ([block.conv3] if not basic else [])
      if d > 1:
        assert all(c.strides == (1, 1) for c in convs)
    if i > 0:
      assert model.stages[i][0].project is not None


@pytest.mark.parametrize("output_stride", [8, 16])
def test_output_stride(output_stride):
  def run(x):
    trunk = build_trunk((32, 48, 3), rngs=nnx.Rngs(0), kind="dilated_resnet", depth=18,
                        width=4, output_stride=output_stride)
    assert trunk.spatial and trunk.stride == output_stride and trunk.out_features == 32
    return trunk(x)
  out = jax.eval_shape(run, jax.ShapeDtypeStruct((2, 32, 48, 3), jnp.float32))
  assert out.shape == (2, 32 // output_stride, 48 // output_stride, 32)


def test_last_stage_convolutions_reach_four_pixels_away():
  """Receptive behaviour: the last stage's 3x3 convolutions (dilation 4) map
  an impulse to taps 4 pixels apart, where a plain 3x3 reaches 1."""
  model = nnx.eval_shape(lambda: DilatedResNet((32, 32, 3), depth=18, width=2,
                                               rngs=nnx.Rngs(0)))
  conv = model.stages[3][-1].conv2
  assert conv.kernel_dilation == (4, 4) and conv.padding == "SAME"
  live = nnx.Conv(1, 1, (3, 3), kernel_dilation=conv.kernel_dilation, padding=conv.padding,
                  kernel_init=jax.nn.initializers.ones, rngs=nnx.Rngs(0))
  x = np.zeros((1, 9, 9, 1), np.float32)
  x[0, 4, 4] = 1.0
  y = np.asarray(live(jnp.asarray(x)))[0, ..., 0]
  reached = {(i - 4, j - 4) for i, j in zip(*np.nonzero(y))}
  assert reached == {(a, b) for a in (-4, 0, 4) for b in (-4, 0, 4)}


def test_invalid_options():
  with pytest.raises(ValueError, match="depth must be one of"):
    DilatedResNet((16, 16, 3), depth=20, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="output_stride must be one of"):
    DilatedResNet((16, 16, 3), output_stride=4, rngs=nnx.Rngs(0))
