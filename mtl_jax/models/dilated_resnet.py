"""Dilated ResNet trunk: a ResNet whose last stages trade stride for dilation.

Yu, Koltun & Funkhouser, "Dilated Residual Networks", CVPR 2017; the encoder
of LibMTL's NYUv2 and Cityscapes benchmarks (median-research-group/LibMTL
``LibMTL/model/resnet_dilated.py``, ``resnet_dilated('resnet50')``, whose
features feed the DeepLab heads of :mod:`mtl_jax.models.dense_heads`).

The ImageNet ResNet (conv 7x7 stride 2 -> BN -> ReLU -> max-pool 3x3 stride 2,
four stages of ``(64, 128, 256, 512) x expansion`` channels) with the strides
of the last two stages replaced by dilation, as LibMTL's ``_nostride_dilate``
does for ``dilate_scale=8``: in stage 3 (dilation ``d = 2``) and stage 4
(``d = 4``) every convolution has stride 1; the 3x3 convolution that had
stride 2 gets dilation ``d / 2`` and every other 3x3 convolution dilation
``d``; the first block keeps its 1x1 shortcut projection (now stride 1).
``output_stride=16`` dilates stage 4 only (``d = 2``). The output is the
feature map ``[B, ceil(H / s), ceil(W / s), 512 x expansion]`` with ``s`` the
output stride (8: ``36 x 48 x 2048`` for a 288x384 image and ResNet-50).

``depth``: 50 (the default, LibMTL's: bottleneck blocks ``(3, 4, 6, 3)``,
23,508,032 parameters with ``width=64``), 101 (``(3, 4, 23, 3)``), 18 (basic
blocks ``(2, 2, 2, 2)``) or 34 (basic, ``(3, 4, 6, 3)``); ``width`` scales
every stage (64 is the standard ResNet; tests use a few channels).

No pretrained weights: nothing downloads here, so the trunk starts from a
random initialisation (Flax's default LeCun-normal convolutions, BN scale 1
and bias 0). LibMTL starts from torchvision's ImageNet-pretrained ResNet-50,
and the published NYUv2 / Cityscapes numbers depend on that: a run from
scratch gives lower segmentation and depth scores, so it is not comparable to
the published table. Padding is 'SAME' (PyTorch pads symmetrically; at stride
2 the two place the window one pixel apart).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.resnet import BasicBlock, Bottleneck, _conv

# depth -> (block, blocks per stage)
DEPTHS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
          50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3))}
OUTPUT_STRIDES = (8, 16)


def stage_dilations(output_stride: int) -> tuple[int, int, int, int]:
  """The dilation ``d`` of each stage (1: not dilated, strided as usual)."""
  return (1, 1, 2, 4) if output_stride == 8 else (1, 1, 1, 2)


class DilatedResNet(nnx.Module):
  """``[B, H, W, C] -> [B, h, w, 512 x expansion x width / 64]``, ``h = ceil(H / stride)``.

  Args:
    input_shape: ``(H, W, C)`` of one example.
    depth: 18, 34, 50 (default) or 101.
    width: channels of the stem and of the first stage's blocks (64: the
      standard ResNet).
    output_stride: 8 (default, LibMTL's ``dilate_scale=8``) or 16.
    rngs: initialisation keys.

  Stages (for cross-stitch): stage 0 is the stem and the first stage's
  blocks; stage ``i`` the blocks of stage ``i``; all stages in order equal
  ``__call__``. ``dilations[i]`` lists the dilations of every 3x3
  convolution of stage ``i``.
  """

  kind = "dilated_resnet"
  spatial = True  # A feature map [B, h, w, C].

  def __init__(self, input_shape: Sequence[int], *, depth: int = 50, width: int = 64,
               output_stride: int = 8, rngs: nnx.Rngs):
    if len(input_shape) != 3:
      raise ValueError(f"A dilated_resnet trunk needs (H, W, C) inputs, got "
                       f"{tuple(input_shape)}.")
    if depth not in DEPTHS:
      raise ValueError(f"dilated_resnet depth must be one of {sorted(DEPTHS)}, "
                       f"got {depth!r}.")
    if output_stride not in OUTPUT_STRIDES:
      raise ValueError(f"dilated_resnet output_stride must be one of {OUTPUT_STRIDES}, "
                       f"got {output_stride!r}.")
    block, blocks = DEPTHS[depth]
    self.stride = int(output_stride)
    self.stem = _conv(int(input_shape[-1]), width, 7, 2, rngs)
    self.stem_norm = nnx.BatchNorm(width, rngs=rngs)
    self.stages = nnx.List()
    dilations = []
    in_ch = width
    for i, (count, d) in enumerate(zip(blocks, stage_dilations(output_stride))):
      planes = width * 2 ** i
      stride = 1 if i == 0 or d > 1 else 2
      # The 3x3 conv that had stride 2 gets d/2, every other 3x3 conv d.
      first = (d // 2 if i > 0 and d > 1 else d, d)
      rest = (d, d)
      stage = []
      for j in range(count):
        dil = first if j == 0 else rest
        stage.append(block(in_ch, planes, stride if j == 0 else 1, rngs=rngs,
                           dilation=dil if block is BasicBlock else (dil[0], 1),
                           project=j == 0 and i > 0))
        in_ch = planes * block.expansion
      dilations.append(tuple(
          (b.conv1.kernel_dilation[0], b.conv2.kernel_dilation[0]) if block is BasicBlock
          else (b.conv2.kernel_dilation[0],) for b in stage))
      self.stages.append(nnx.List(stage))
    self.dilations = tuple(dilations)
    self.out_features = in_ch

  @property
  def num_stages(self) -> int:
    return len(self.stages)

  def stage_width(self, i: int) -> int:
    """Channels after stage ``i``."""
    last = self.stages[i][-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_features

  def stage(self, i: int, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Stage ``i`` (see the class docstring)."""
    if i == 0:
      x = nnx.relu(self.stem_norm(self.stem(x), use_running_average=not train))
      x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1),
                                "SAME")
    for block in self.stages[i]:
      x = block(x, train=train)
    return x

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    for i in range(self.num_stages):
      x = self.stage(i, x, train=train)
    return x
