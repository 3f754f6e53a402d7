"""Shared feature extractors (trunks), built by :func:`build_trunk` from ``trunk.kind``.

``mlp`` and ``cnn`` (here) and ``resnet`` (:mod:`mtl_jax.models.resnet`) map
inputs ``[B, ...]`` to a vector ``[B, features]``; ``segnet``
(:mod:`mtl_jax.models.segnet`) and ``dilated_resnet``
(:mod:`mtl_jax.models.dilated_resnet`) to a feature map ``[B, h, w, C]``, for
dense (per-pixel) tasks. Every trunk exposes ``kind``, ``out_features`` (the
vector's size or the map's channels), ``spatial`` (True for a feature map) and,
for a map, ``stride`` (input size / map size). All take a ``train`` flag
(batch statistics, when normalisation is on). They hold no task knowledge;
multi-task models wrap them.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.dilated_resnet import DEPTHS, OUTPUT_STRIDES, DilatedResNet
from mtl_jax.models.options import frozen, group, keyword_defaults
from mtl_jax.models.resnet import ResNet
from mtl_jax.models.segnet import SegNet
from mtl_jax.validators import boolean, choice, positive_int, widths

TRUNK_KINDS = ("cnn", "mlp", "resnet", "segnet", "dilated_resnet")
# ``channels`` when the trunk options leave it out (None).
DEFAULT_CHANNELS = {"cnn": (16, 32), "segnet": (64, 128, 256, 512, 512)}
ACTIVATIONS = {"relu": nnx.relu, "gelu": nnx.gelu, "tanh": jnp.tanh,
               "silu": nnx.silu, "identity": lambda x: x}


def flat_size(input_shape: Sequence[int]) -> int:
  """Number of features of one flattened example."""
  return math.prod(int(d) for d in input_shape)


def activation(name: str):
  if name not in ACTIVATIONS:
    raise ValueError(f"Unknown activation {name!r}; valid: {sorted(ACTIVATIONS)}.")
  return ACTIVATIONS[name]


class MLP(nnx.Module):
  """Dense layers with an activation after each (optionally not the last).

  Args:
    in_features: flattened input size.
    hidden: sizes of the layers.
    act: activation name.
    final_act: apply the activation after the last layer too.
    rngs: initialisation keys.
  """

  kind = "mlp"
  spatial = False

  def __init__(self, in_features: int, hidden: Sequence[int], *, act: str = "relu",
               final_act: bool = True, rngs: nnx.Rngs):
    sizes = [in_features, *hidden]
    self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs)
                            for a, b in zip(sizes[:-1], sizes[1:])])
    self.act = act
    self.final_act = final_act
    self.out_features = sizes[-1]

  @property
  def num_stages(self) -> int:
    """One stage per dense layer (see :meth:`stage`)."""
    return len(self.layers)

  def stage_width(self, i: int) -> int:
    """Features after stage ``i``."""
    return self.layers[i].out_features

  def stage(self, i: int, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Dense layer ``i`` and its activation; all stages in order = ``__call__``."""
    del train
    if i == 0:
      x = x.reshape(x.shape[0], -1)
    x = self.layers[i](x)
    return activation(self.act)(x) if self.final_act or i < self.num_stages - 1 else x

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    for i in range(self.num_stages):
      x = self.stage(i, x, train=train)
    return x


class CNN(nnx.Module):
  """Conv blocks (conv 3x3 -> [batch norm] -> act -> 2x2 max-pool), then a dense layer.

  Args:
    input_shape: ``(H, W, C)`` of one example.
    channels: output channels of each conv block.
    features: size of the final dense representation.
    kernel_size: convolution window.
    batch_norm: add batch normalisation after each convolution.
    act: activation name.
    rngs: initialisation keys.
  """

  kind = "cnn"
  spatial = False  # The final dense layer gives a vector.

  def __init__(self, input_shape: Sequence[int], channels: Sequence[int] = (16, 32),
               features: int = 64, *, kernel_size: int = 3, batch_norm: bool = False,
               act: str = "relu", rngs: nnx.Rngs):
    h, w, c = input_shape
    self.convs = nnx.List()
    self.norms = nnx.List()
    for out in channels:
      self.convs.append(nnx.Conv(c, out, (kernel_size, kernel_size), rngs=rngs))
      if batch_norm:
        self.norms.append(nnx.BatchNorm(out, rngs=rngs))
      c, h, w = out, h // 2, w // 2
    if h < 1 or w < 1:
      raise ValueError(f"CNN: input {tuple(input_shape)} is too small for "
                       f"{len(channels)} pooling blocks.")
    self.dense = nnx.Linear(h * w * c, features, rngs=rngs)
    self.act = act
    self.out_features = features

  @property
  def num_stages(self) -> int:
    """One stage per conv block, plus the final dense layer."""
    return len(self.convs) + 1

  def stage_width(self, i: int) -> int:
    """Channels after conv block ``i``, or the dense features (last stage)."""
    return self.convs[i].out_features if i < len(self.convs) else self.out_features

  def stage(self, i: int, x: jax.Array, *, train: bool = False) -> jax.Array:
    """Conv block ``i`` (or the dense layer); all stages in order = ``__call__``."""
    fn = activation(self.act)
    if i == len(self.convs):
      return fn(self.dense(x.reshape(x.shape[0], -1)))
    x = self.convs[i](x)
    if len(self.norms):
      x = self.norms[i](x, use_running_average=not train)
    return max_pool_2x2(fn(x))

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    for i in range(self.num_stages):
      x = self.stage(i, x, train=train)
    return x


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max pooling, stride 2, VALID, on ``[B, H, W, C]``.

  A reshape and a max: same values as ``nnx.max_pool(x, (2, 2), (2, 2))``, but
  its gradient is a cheap select where ``reduce_window``'s gradient is a slow
  scatter on XLA:CPU (51 ms vs 7 ms per LeNet step, benchmarks/README.md).
  """
  b, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def global_pool(x: jax.Array) -> jax.Array:
  """``[B, ..., C] -> [B, C]`` by averaging the spatial axes (if any)."""
  return x if x.ndim == 2 else jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))


def build_trunk(input_shape: Sequence[int], *, rngs: nnx.Rngs, kind: str = "mlp",
                act: str = "relu", hidden: Sequence[int] = (256, 128),
                channels: Optional[Sequence[int]] = None, features: int = 64,
                kernel_size: int = 3, batch_norm: bool = False,
                blocks: Sequence[int] = (2, 2, 2, 2), width: int = 64,
                stem: str = "cifar", layers: Optional[Sequence[int]] = None,
                depth: int = 50, output_stride: int = 8) -> nnx.Module:
  """A trunk (shared feature extractor) for inputs of ``input_shape``.

  Architectures take these options as their ``trunk`` dict, e.g.
  ``trunk=dict(kind="cnn", channels=(16, 32), features=64)``; each kind reads
  its own and ignores the others.

  Args:
    input_shape: shape of one example.
    rngs: initialisation keys.
    kind: ``'mlp'`` (:class:`MLP`, on the flattened input), ``'cnn'``
      (:class:`CNN`), ``'resnet'`` (:class:`mtl_jax.models.resnet.ResNet`),
      ``'segnet'`` (:class:`mtl_jax.models.segnet.SegNet`, a feature map at
      the input's resolution) or ``'dilated_resnet'``
      (:class:`mtl_jax.models.dilated_resnet.DilatedResNet`, a feature map at
      stride ``output_stride``); all but mlp need ``(H, W, C)`` inputs.
    act: activation name (mlp, cnn).
    hidden: layer widths (mlp).
    channels: output channels of each conv block (cnn; default ``(16, 32)``)
      or of each encoder stage (segnet; default ``(64, 128, 256, 512, 512)``,
      the MTAN paper's); None gives the kind's default.
    features: size of the final dense representation (cnn).
    kernel_size: convolution window (cnn).
    batch_norm: batch normalisation after each convolution (cnn).
    blocks: basic blocks per stage (resnet).
    width: channels of the first stage (resnet, dilated_resnet).
    stem: ``'cifar'`` or ``'imagenet'`` (resnet).
    layers: conv layers per stage (segnet; None: VGG-16's ``(2, 2, 3, 3, 3)``).
    depth: 18, 34, 50 or 101 (dilated_resnet; default 50, LibMTL's).
    output_stride: 8 or 16 (dilated_resnet).
  """
  choice(kind, "trunk.kind", TRUNK_KINDS)
  if kind == "mlp":
    return MLP(flat_size(input_shape), tuple(hidden), act=act, rngs=rngs)
  if len(input_shape) != 3:
    raise ValueError(f"A {kind} trunk needs (H, W, C) inputs, got {tuple(input_shape)}.")
  if channels is None:
    channels = DEFAULT_CHANNELS.get(kind, ())
  if kind == "cnn":
    return CNN(input_shape, tuple(channels), int(features), kernel_size=int(kernel_size),
               batch_norm=bool(batch_norm), act=act, rngs=rngs)
  if kind == "segnet":
    return SegNet(input_shape, tuple(channels), layers, rngs=rngs)
  if kind == "dilated_resnet":
    return DilatedResNet(input_shape, depth=int(depth), width=int(width),
                         output_stride=int(output_stride), rngs=rngs)
  return ResNet(input_shape, tuple(blocks), int(width), stem=stem, rngs=rngs)


# The keys of a ``trunk`` option group and their defaults.
TRUNK = frozen(**keyword_defaults(build_trunk))


def trunk_options(trunk: Optional[Mapping[str, Any]], owner: str) -> dict[str, Any]:
  """``trunk`` (an architecture's option) checked and completed with defaults:
  keyword arguments for :func:`build_trunk`. ``owner`` leads the messages."""
  trunk = group(trunk, f"{owner}: trunk", TRUNK)
  name = f"{owner}: trunk"
  choice(trunk["kind"], f"{name}.kind", TRUNK_KINDS)
  for key in ("hidden", "blocks"):
    trunk[key] = widths(trunk[key], f"{name}.{key}")
  if trunk["channels"] is None:
    trunk["channels"] = DEFAULT_CHANNELS.get(trunk["kind"], ())
  # A CNN may have no conv block (a dense layer on the flattened input).
  if trunk["channels"] not in ((), []) or trunk["kind"] == "segnet":
    trunk["channels"] = widths(trunk["channels"], f"{name}.channels")
  if trunk["layers"] is not None:
    trunk["layers"] = widths(trunk["layers"], f"{name}.layers")
  for key in ("features", "kernel_size", "width"):
    trunk[key] = positive_int(trunk[key], f"{name}.{key}")
  choice(trunk["depth"], f"{name}.depth", tuple(sorted(DEPTHS)))
  choice(trunk["output_stride"], f"{name}.output_stride", OUTPUT_STRIDES)
  trunk["batch_norm"] = boolean(trunk["batch_norm"], f"{name}.batch_norm")
  return trunk
