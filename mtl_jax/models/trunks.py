"""Shared feature extractors: an MLP and a small CNN (ResNets: :mod:`mtl_jax.models.resnet`).

Both map inputs ``[B, ...]`` to a representation ``[B, features]`` and take a
``train`` flag (batch statistics, when normalisation is on). They hold no task
knowledge; multi-task models wrap them.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

ACTIVATIONS = {"relu": nnx.relu, "gelu": nnx.gelu, "tanh": jnp.tanh,
               "silu": nnx.silu, "identity": lambda x: x}


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


def build_trunk(config, input_shape: Sequence[int], *, rngs: nnx.Rngs) -> nnx.Module:
  """A trunk from ``config.model.trunk``: ``kind`` in {'mlp', 'cnn', 'resnet'}
  (:class:`mtl_jax.models.resnet.ResNet`: ``blocks``, ``width``, ``stem``)."""
  kind = config.get("kind", "mlp")
  act = config.get("act", "relu")
  if kind == "mlp":
    in_features = 1
    for d in input_shape:
      in_features *= int(d)
    return MLP(in_features, tuple(config.get("hidden", (256, 128))), act=act,
               rngs=rngs)
  if kind == "cnn":
    if len(input_shape) != 3:
      raise ValueError(f"A cnn trunk needs (H, W, C) inputs, got {tuple(input_shape)}.")
    return CNN(input_shape, tuple(config.get("channels", (16, 32))),
               int(config.get("features", 64)), kernel_size=int(config.get("kernel_size", 3)),
               batch_norm=bool(config.get("batch_norm", False)), act=act, rngs=rngs)
  if kind == "resnet":
    from mtl_jax.models.resnet import ResNet
    return ResNet(input_shape, tuple(config.get("blocks", (2, 2, 2, 2))),
                  int(config.get("width", 64)), stem=config.get("stem", "cifar"),
                  rngs=rngs)
  raise ValueError(f"Unknown trunk kind {kind!r}; valid: ['cnn', 'mlp', 'resnet'].")
