"""ResNet trunks (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

``ResNet`` is the trunk ``trunk=dict(kind="resnet", ...)``: basic
blocks (conv 3x3 -> batch norm -> ReLU -> conv 3x3 -> batch norm, plus the
identity or a 1x1 projection, then ReLU), four stages of widths
``(w, 2w, 4w, 8w)`` with strides ``(1, 2, 2, 2)``, global average pooling.
``blocks=(2, 2, 2, 2)`` and ``width=64`` give ResNet-18; the default
``stem='cifar'`` is one 3x3 convolution (for 32x32 images, as in the paper's
CIFAR-10 experiments and most MTL benchmarks), ``'imagenet'`` the 7x7 stride-2
convolution and 3x3 stride-2 max-pool. Convolutions have no bias (batch norm
follows each). With ``width=64`` and the CIFAR stem the trunk has 11,168,832
parameters, as PyTorch's CIFAR ResNet-18 without its classifier.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

STEMS = ("cifar", "imagenet")


def _conv(in_ch: int, out_ch: int, size: int, stride: int, rngs: nnx.Rngs,
          dilation: int = 1) -> nnx.Conv:
  return nnx.Conv(in_ch, out_ch, (size, size), strides=(stride, stride),
                  kernel_dilation=(dilation, dilation), padding="SAME", use_bias=False,
                  rngs=rngs)


class BasicBlock(nnx.Module):
  """Two 3x3 convolutions with batch norm and a residual connection.

  ``dilation``: the dilations of the two 3x3 convolutions (dilated ResNets,
  :mod:`mtl_jax.models.dilated_resnet`); ``project``: force the 1x1
  projection of the shortcut (a dilated stage keeps the projection of the
  strided block it replaces).
  """

  expansion = 1

  def __init__(self, in_ch: int, out_ch: int, stride: int, *, rngs: nnx.Rngs,
               dilation: tuple[int, int] = (1, 1), project: bool = False):
    self.conv1 = _conv(in_ch, out_ch, 3, stride, rngs, dilation[0])
    self.norm1 = nnx.BatchNorm(out_ch, rngs=rngs)
    self.conv2 = _conv(out_ch, out_ch, 3, 1, rngs, dilation[1])
    self.norm2 = nnx.BatchNorm(out_ch, rngs=rngs)
    if project or stride != 1 or in_ch != out_ch:
      self.project = _conv(in_ch, out_ch, 1, stride, rngs)
      self.project_norm = nnx.BatchNorm(out_ch, rngs=rngs)
    else:
      self.project = None

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    frozen = not train
    y = nnx.relu(self.norm1(self.conv1(x), use_running_average=frozen))
    y = self.norm2(self.conv2(y), use_running_average=frozen)
    if self.project is not None:
      x = self.project_norm(self.project(x), use_running_average=frozen)
    return nnx.relu(x + y)


class Bottleneck(nnx.Module):
  """1x1 (``planes``) -> 3x3 (``planes``, stride, dilation) -> 1x1 (``4 planes``),
  batch norm after each, ReLU, residual connection (torchvision's ResNet v1.5:
  the stride is on the 3x3 convolution)."""

  expansion = 4

  def __init__(self, in_ch: int, planes: int, stride: int, *, rngs: nnx.Rngs,
               dilation: tuple[int, int] = (1, 1), project: bool = False):
    out_ch = planes * self.expansion
    self.conv1 = _conv(in_ch, planes, 1, 1, rngs)
    self.norm1 = nnx.BatchNorm(planes, rngs=rngs)
    self.conv2 = _conv(planes, planes, 3, stride, rngs, dilation[0])
    self.norm2 = nnx.BatchNorm(planes, rngs=rngs)
    self.conv3 = _conv(planes, out_ch, 1, 1, rngs)
    self.norm3 = nnx.BatchNorm(out_ch, rngs=rngs)
    if project or stride != 1 or in_ch != out_ch:
      self.project = _conv(in_ch, out_ch, 1, stride, rngs)
      self.project_norm = nnx.BatchNorm(out_ch, rngs=rngs)
    else:
      self.project = None

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    frozen = not train
    y = nnx.relu(self.norm1(self.conv1(x), use_running_average=frozen))
    y = nnx.relu(self.norm2(self.conv2(y), use_running_average=frozen))
    y = self.norm3(self.conv3(y), use_running_average=frozen)
    if self.project is not None:
      x = self.project_norm(self.project(x), use_running_average=frozen)
    return nnx.relu(x + y)


class ResNet(nnx.Module):
  """A ResNet trunk: ``[B, H, W, C] -> [B, 8 * width]`` (a vector).

  Args:
    input_shape: ``(H, W, C)`` of one example.
    blocks: basic blocks per stage (``(2, 2, 2, 2)``: ResNet-18).
    width: channels of the first stage; stage ``i`` has ``width * 2**i``.
    stem: ``'cifar'`` (conv 3x3) or ``'imagenet'`` (conv 7x7 stride 2,
      max-pool 3x3 stride 2).
    rngs: initialisation keys.

  Stages (for hierarchical sharing and cross-stitch): stage ``i`` is the stem
  (for ``i = 0``) and the blocks of stage ``i``; the last stage ends with the
  global average pool, so all stages in order equal ``__call__``.
  """

  kind = "resnet"
  spatial = False  # Globally pooled: a vector per example.

  def __init__(self, input_shape: Sequence[int], blocks: Sequence[int] = (2, 2, 2, 2),
               width: int = 64, *, stem: str = "cifar", rngs: nnx.Rngs):
    if len(input_shape) != 3:
      raise ValueError(f"A resnet trunk needs (H, W, C) inputs, got {tuple(input_shape)}.")
    if stem not in STEMS:
      raise ValueError(f"Unknown resnet stem {stem!r}; valid: {list(STEMS)}.")
    if not blocks or min(blocks) < 1 or width < 1:
      raise ValueError(f"resnet blocks must be positive counts and width positive; "
                       f"got blocks={tuple(blocks)}, width={width}.")
    channels = int(input_shape[-1])
    self.imagenet_stem = stem == "imagenet"
    self.stem = _conv(channels, width, 7 if self.imagenet_stem else 3,
                      2 if self.imagenet_stem else 1, rngs)
    self.stem_norm = nnx.BatchNorm(width, rngs=rngs)
    self.stages = nnx.List()
    in_ch = width
    for i, count in enumerate(blocks):
      out_ch = width * 2 ** i
      stride = 1 if i == 0 else 2
      self.stages.append(nnx.List([
          BasicBlock(in_ch if j == 0 else out_ch, out_ch, stride if j == 0 else 1,
                     rngs=rngs) for j in range(count)]))
      in_ch = out_ch
    self.out_features = in_ch

  @property
  def num_stages(self) -> int:
    return len(self.stages)

  def stage_width(self, i: int) -> int:
    """Channels after stage ``i``."""
    return self.stages[i][-1].conv2.out_features

  def _stem(self, x: jax.Array, train: bool) -> jax.Array:
    x = nnx.relu(self.stem_norm(self.stem(x), use_running_average=not train))
    if self.imagenet_stem:
      x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1),
                                (1, 2, 2, 1), "SAME")
    return x

  def stage(self, i: int, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Stage ``i`` (see the class docstring)."""
    if i == 0:
      x = self._stem(x, train)
    for block in self.stages[i]:
      x = block(x, train=train)
    return jnp.mean(x, axis=(1, 2)) if i == self.num_stages - 1 else x

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    for i in range(self.num_stages):
      x = self.stage(i, x, train=train)
    return x
