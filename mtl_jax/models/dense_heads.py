"""Dense (per-pixel) task heads: feature map ``[B, h, w, C]`` -> ``[B, H, W, out]``.

Two heads, selected by the ``head`` option ``dense`` of every architecture
that produces a feature map (see :func:`mtl_jax.models.heads.build_heads`):

* ``'conv'`` (:class:`ConvHead`): the task heads of the MTAN authors' SegNet
  (Liu, Johns & Davison, CVPR 2019; lorenmt/mtan
  ``im2im_pred/model_segnet_mtan.py``, ``pred_task*``): a 3x3 convolution
  ``C -> width`` then a 1x1 convolution ``width -> out``, both with biases.
  The authors put no activation between the two (``dense_act='identity'``,
  our default); ``dense_act='relu'`` gives the conv -> ReLU -> conv variant.
* ``'aspp'`` (:class:`ASPPHead`): LibMTL's NYUv2 / Cityscapes DeepLab head
  (median-research-group/LibMTL ``LibMTL/model/decoder/DeepLabHead.py``,
  ``examples/nyu/aspp.py``; Chen et al., "Rethinking Atrous Convolution for
  Semantic Image Segmentation", arXiv:1706.05587): atrous spatial pyramid
  pooling (a 1x1 branch, three 3x3 branches with dilation rates
  ``(12, 24, 36)`` and an image-pooling branch, each conv-BN-ReLU with
  ``width = 256`` channels), concatenated and projected by a 1x1 conv-BN-ReLU,
  then a 3x3 conv-BN-ReLU and the 1x1 classifier. Convolutions have no bias
  except the classifier's, as LibMTL's. Departures: LibMTL's projection ends
  with ``Dropout(0.5)``; the models here take no dropout key, so it is left
  out. The head is DeepLabV3's (what LibMTL ships under the name "DeepLabV3+"
  benchmarks): no decoder with low-level skip features.

Both heads resize their output bilinearly to the input resolution ``(H, W)``
given at build time when the feature map is smaller (stride > 1), with
``align_corners=True`` as LibMTL's ``F.interpolate`` calls; at stride 1 (SegNet)
no resizing happens. The resize is two small matrix products with fixed
interpolation matrices (:func:`resize_bilinear`), whose gradient is again a
matrix product (no scatter).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mtl_jax.models.trunks import activation

DENSE_HEADS = ("conv", "aspp")


def interpolation_matrix(size_in: int, size_out: int,
                         align_corners: bool = True) -> np.ndarray:
  """``[size_out, size_in]`` linear-interpolation weights along one axis.

  ``align_corners=True``: output ``i`` samples input position
  ``i (size_in - 1) / (size_out - 1)`` (corners aligned, PyTorch's
  ``align_corners=True``); ``False``: half-pixel centres
  ``(i + 0.5) size_in / size_out - 0.5``, clamped to the border.
  """
  if align_corners:
    scale = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
    pos = np.arange(size_out) * scale
  else:
    pos = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
  pos = np.clip(pos, 0, size_in - 1)
  low = np.floor(pos).astype(int)
  high = np.minimum(low + 1, size_in - 1)
  frac = pos - low
  m = np.zeros((size_out, size_in), np.float32)
  m[np.arange(size_out), low] += 1 - frac
  m[np.arange(size_out), high] += frac
  return m


def resize_bilinear(x: jax.Array, size: Sequence[int],
                    align_corners: bool = True) -> jax.Array:
  """Bilinear resize of ``[B, h, w, C]`` to ``[B, H, W, C]`` (identity if equal)."""
  h, w = x.shape[1:3]
  out_h, out_w = (int(s) for s in size)
  if (h, w) == (out_h, out_w):
    return x
  mh = jnp.asarray(interpolation_matrix(h, out_h, align_corners), x.dtype)
  mw = jnp.asarray(interpolation_matrix(w, out_w, align_corners), x.dtype)
  return jnp.einsum("Hh,bhwc,Ww->bHWc", mh, x, mw)


class ConvHead(nnx.Module):
  """conv 3x3 (``C -> width``) -> act -> conv 1x1 (``width -> out``), resized.

  Args:
    in_features: channels ``C`` of the feature map.
    out_features: the task's output channels.
    out_size: ``(H, W)``, the input resolution.
    width: channels of the 3x3 convolution (None: ``C``, as the authors').
    act: activation between the convolutions (``'identity'``: the authors').
    rngs: initialisation keys.
  """

  def __init__(self, in_features: int, out_features: int, out_size: Sequence[int], *,
               width: int | None = None, act: str = "identity", rngs: nnx.Rngs):
    width = in_features if width is None else int(width)
    activation(act)  # Validates the name.
    self.conv = nnx.Conv(in_features, width, (3, 3), rngs=rngs)
    self.out = nnx.Conv(width, out_features, (1, 1), rngs=rngs)
    self.act = act
    self.out_size = tuple(int(s) for s in out_size)

  def __call__(self, z: jax.Array, *, train: bool = False) -> jax.Array:
    del train
    y = self.out(activation(self.act)(self.conv(z)))
    return resize_bilinear(y, self.out_size)


class ConvBNReLU(nnx.Module):
  """conv (no bias, optional dilation) -> batch norm -> ReLU."""

  def __init__(self, a: int, b: int, size: int, *, dilation: int = 1, rngs: nnx.Rngs):
    self.conv = nnx.Conv(a, b, (size, size), kernel_dilation=(dilation, dilation),
                         padding="SAME", use_bias=False, rngs=rngs)
    self.norm = nnx.BatchNorm(b, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return nnx.relu(self.norm(self.conv(x), use_running_average=not train))


class ASPP(nnx.Module):
  """Atrous spatial pyramid pooling: 1x1, dilated 3x3 (one per rate), image
  pooling; concatenated, projected to ``width`` (LibMTL's ``ASPP``)."""

  def __init__(self, in_features: int, rates: Sequence[int], width: int, *,
               rngs: nnx.Rngs):
    self.branches = nnx.List(
        [ConvBNReLU(in_features, width, 1, rngs=rngs)]
        + [ConvBNReLU(in_features, width, 3, dilation=int(r), rngs=rngs) for r in rates])
    self.pool = ConvBNReLU(in_features, width, 1, rngs=rngs)
    self.project = ConvBNReLU(width * (len(rates) + 2), width, 1, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    outs = [branch(x, train=train) for branch in self.branches]
    pooled = self.pool(jnp.mean(x, axis=(1, 2), keepdims=True), train=train)
    # Bilinear upsampling of a 1x1 map is a broadcast.
    outs.append(jnp.broadcast_to(pooled, (*x.shape[:3], pooled.shape[-1])))
    return self.project(jnp.concatenate(outs, axis=-1), train=train)


class ASPPHead(nnx.Module):
  """ASPP -> conv 3x3-BN-ReLU -> conv 1x1 classifier, resized (LibMTL's
  ``DeepLabHead``).

  Args:
    in_features: channels ``C`` of the feature map (2048 for ResNet-50).
    out_features: the task's output channels.
    out_size: ``(H, W)``, the input resolution.
    rates: the atrous rates of the three 3x3 branches (LibMTL: 12, 24, 36).
    width: channels of every ASPP branch and of the 3x3 conv (LibMTL: 256).
    rngs: initialisation keys.
  """

  def __init__(self, in_features: int, out_features: int, out_size: Sequence[int], *,
               rates: Sequence[int] = (12, 24, 36), width: int = 256, rngs: nnx.Rngs):
    self.aspp = ASPP(in_features, rates, width, rngs=rngs)
    self.conv = ConvBNReLU(width, width, 3, rngs=rngs)
    self.out = nnx.Conv(width, out_features, (1, 1), rngs=rngs)
    self.out_size = tuple(int(s) for s in out_size)

  def __call__(self, z: jax.Array, *, train: bool = False) -> jax.Array:
    y = self.conv(self.aspp(z, train=train), train=train)
    return resize_bilinear(self.out(y), self.out_size)
