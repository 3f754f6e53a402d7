"""SegNet encoder-decoder trunk (the MTAN paper's NYUv2 network).

Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional
Encoder-Decoder Architecture for Image Segmentation", TPAMI 2017; as used by
Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention",
CVPR 2019 (authors' code: lorenmt/mtan ``im2im_pred/model_segnet_split.py``
and ``model_segnet_mtan.py``).

Encoder: stages ``j = 0 .. J-1`` of ``layers[j]`` conv 3x3 -> BN -> ReLU
layers (the first maps ``c_{j-1} -> c_j``, the others ``c_j -> c_j``), each
followed by a 2x2 max-pool that keeps its argmax positions. Decoder, mirrored
(deepest first): stage ``j`` max-unpools with stage ``j``'s positions, then
``layers[j]`` conv-BN-ReLU layers, the first ``c_j -> c_{j-1}`` (``c_0 -> c_0``
for ``j = 0``), the others ``c_{j-1} -> c_{j-1}``. The defaults are the
authors': ``channels = (64, 128, 256, 512, 512)``, ``layers = (2, 2, 3, 3, 3)``
(VGG-16's 13 convolutions), convolutions with bias, Xavier-normal kernels and
zero biases. Output: ``[B, H, W, c_0]`` (stride 1); ``H`` and ``W`` must be
divisible by ``2^J``.

Max-unpooling here is a mask, not a scatter: :func:`max_pool_2x2_with_mask`
returns the pooled map and a boolean mask ``[B, H, W, C]`` that marks, in
every 2x2 window, the first maximal position in row-major order (the index
PyTorch's ``MaxPool2d(return_indices=True)`` returns); :func:`max_unpool_2x2`
repeats each value over its window and keeps it at the mask. Both
gradients are selects and reductions (scatters are slow on XLA:CPU, see
:func:`mtl_jax.models.trunks.max_pool_2x2`).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

VGG16_LAYERS = (2, 2, 3, 3, 3)
XAVIER = jax.nn.initializers.xavier_normal()


def max_pool_2x2_with_mask(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """2x2 max pooling, stride 2, of ``[B, H, W, C]`` (H, W even).

  Returns:
    ``(pooled [B, H/2, W/2, C], mask [B, H, W, C])``; ``mask`` is True at
    the first maximum of each window in row-major order. The pooled value's
    gradient goes to that position only (as PyTorch's).
  """
  b, h, w, c = x.shape
  win = x.reshape(b, h // 2, 2, w // 2, 2, c)
  corners = [win[:, :, r, :, s] for r in (0, 1) for s in (0, 1)]
  top = jnp.maximum(jnp.maximum(corners[0], corners[1]),
                    jnp.maximum(corners[2], corners[3]))
  taken = jnp.zeros(top.shape, bool)
  masks = []
  for corner in corners:
    m = (corner == top) & ~taken
    masks.append(m)
    taken = taken | m
  pooled = jnp.where(masks[0], corners[0], jnp.where(
      masks[1], corners[1], jnp.where(masks[2], corners[2], corners[3])))
  rows = [jnp.stack(masks[0:2], axis=3), jnp.stack(masks[2:4], axis=3)]
  mask = jnp.stack(rows, axis=2)  # [b, h/2, 2, w/2, 2, c]
  return pooled, mask.reshape(b, h, w, c)


def max_unpool_2x2(y: jax.Array, mask: jax.Array) -> jax.Array:
  """Inverse of :func:`max_pool_2x2_with_mask`: ``y [B, h, w, C]`` placed at
  ``mask [B, 2h, 2w, C]``'s positions, zero elsewhere."""
  b, h, w, c = y.shape
  up = jnp.broadcast_to(y[:, :, None, :, None, :], (b, h, 2, w, 2, c))
  return jnp.where(mask, up.reshape(b, 2 * h, 2 * w, c), jnp.zeros((), y.dtype))


class ConvBlock(nnx.Module):
  """conv 3x3 (bias) -> batch norm -> ReLU (the authors' ``conv_layer``)."""

  def __init__(self, a: int, b: int, *, rngs: nnx.Rngs):
    self.conv = nnx.Conv(a, b, (3, 3), kernel_init=XAVIER, rngs=rngs)
    self.norm = nnx.BatchNorm(b, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return nnx.relu(self.norm(self.conv(x), use_running_average=not train))


class Trace(NamedTuple):
  """Every intermediate MTAN reads (lists indexed by stage, decoder deepest first).

  Attributes:
    first: encoder stage ``j``'s first layer output (``u_j``).
    last: encoder stage ``j``'s last layer output before pooling (``p_j``).
    unpooled: decoder step ``i``'s unpooled input (stage ``J-1-i``).
    decoded: decoder step ``i``'s output; ``decoded[-1]`` is the trunk's output.
  """

  first: list
  last: list
  unpooled: list
  decoded: list


def _run(layers: nnx.List, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
  """The layers in order: ``(first layer's output, last layer's output)``."""
  first = x = layers[0](x, train=train)
  for layer in list(layers)[1:]:
    x = layer(x, train=train)
  return first, x


class SegNet(nnx.Module):
  """SegNet trunk: ``[B, H, W, C_in] -> [B, H, W, channels[0]]``.

  Args:
    input_shape: ``(H, W, C)``; ``H`` and ``W`` divisible by ``2^len(channels)``.
    channels: ``c_j`` of each encoder stage (authors: ``(64, 128, 256, 512, 512)``).
    layers: conv layers per stage (None: VGG-16's ``(2, 2, 3, 3, 3)``, 3 for
      any stage past the fifth).
    rngs: initialisation keys.

  Stages (for cross-stitch): the ``J`` encoder stages (ending with the
  pool), then the ``J`` decoder stages (starting with the unpool). A decoder
  stage needs its encoder stage's pooling mask, so stages run through
  :meth:`stage_carry`, which threads the masks.
  """

  kind = "segnet"
  spatial = True  # A feature map [B, H, W, C].
  stride = 1
  DEFAULT_CHANNELS = (64, 128, 256, 512, 512)

  def __init__(self, input_shape: Sequence[int],
               channels: Sequence[int] = (64, 128, 256, 512, 512),
               layers: Optional[Sequence[int]] = None, *, rngs: nnx.Rngs):
    if len(input_shape) != 3:
      raise ValueError(f"A segnet trunk needs (H, W, C) inputs, got {tuple(input_shape)}.")
    channels = tuple(int(c) for c in channels)
    if not channels or min(channels) < 1:
      raise ValueError(f"segnet channels must be positive widths, got {channels!r}.")
    if layers is None:
      layers = (VGG16_LAYERS + (3,) * len(channels))[:len(channels)]
    layers = tuple(int(n) for n in layers)
    if len(layers) != len(channels) or min(layers) < 1:
      raise ValueError(f"segnet layers must give a positive count per stage "
                       f"({len(channels)} stages), got {layers!r}.")
    h, w, c_in = (int(d) for d in input_shape)
    scale = 2 ** len(channels)
    if h % scale or w % scale:
      raise ValueError(f"segnet: input {tuple(input_shape)} must have H and W divisible "
                       f"by 2^{len(channels)} = {scale} (one 2x2 pooling per stage).")
    self.channels, self.layers = channels, layers
    ins = (c_in,) + channels[:-1]
    self.encoder = nnx.List([
        nnx.List([ConvBlock(a if k == 0 else c, c, rngs=rngs) for k in range(n)])
        for a, c, n in zip(ins, channels, layers)])
    outs = (channels[0],) + channels[:-1]  # decoder stage j: c_j -> c_{j-1}
    self.decoder = nnx.List([
        nnx.List([ConvBlock(c if k == 0 else o, o, rngs=rngs) for k in range(n)])
        for c, o, n in zip(channels, outs, layers)])
    self.out_features = channels[0]

  @property
  def num_stages(self) -> int:
    return 2 * len(self.channels)

  def stage_width(self, i: int) -> int:
    """Channels after stage ``i`` (encoder ``c_i``; decoder ``c_{j-1}``)."""
    n = len(self.channels)
    if i < n:
      return self.channels[i]
    return self.channels[max(2 * n - 1 - i - 1, 0)]

  def stage_carry(self, i: int, x: jax.Array, masks: tuple, *, train: bool = False
                  ) -> tuple[jax.Array, tuple]:
    """Stage ``i`` on ``x``; ``masks`` holds the pooling masks of the encoder
    stages run so far (start with ``()``)."""
    n = len(self.channels)
    if i < n:
      _, x = _run(self.encoder[i], x, train)
      x, mask = max_pool_2x2_with_mask(x)
      return x, masks + (mask,)
    j = 2 * n - 1 - i
    return _run(self.decoder[j], max_unpool_2x2(x, masks[j]), train)[1], masks

  def trace(self, x: jax.Array, *, train: bool = False) -> Trace:
    """The forward pass with the intermediates MTAN attends to."""
    first, last, masks = [], [], []
    for stage in self.encoder:
      u, p = _run(stage, x, train)
      x, mask = max_pool_2x2_with_mask(p)
      first.append(u)
      last.append(p)
      masks.append(mask)
    unpooled, decoded = [], []
    for j in reversed(range(len(self.channels))):
      unpooled.append(max_unpool_2x2(x, masks[j]))
      x = _run(self.decoder[j], unpooled[-1], train)[1]
      decoded.append(x)
    return Trace(first, last, unpooled, decoded)

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    masks = ()
    for i in range(self.num_stages):
      x, masks = self.stage_carry(i, x, masks, train=train)
    return x
