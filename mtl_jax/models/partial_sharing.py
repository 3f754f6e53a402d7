"""Partial sharing: shared and task-specific layers interleaved.

Two variants (see Ruder, "An Overview of Multi-Task Learning in Deep Neural
Networks", arXiv:1706.05098, 2017, for the taxonomy):

* :class:`TaskConv` (``task_conv``): shared conv encoder -> one convolution
  per task -> shared decoding layer -> heads. Task-specific convolutions in an
  otherwise shared network follow Rebuffi, Bilen & Vedaldi, "Learning multiple
  visual domains with residual adapters", NeurIPS 2017, arXiv:1705.08045, and
  Maninis, Radosavovic & Kokkinos, "Attentive Single-Tasking of Multiple
  Tasks", CVPR 2019, arXiv:1904.08918.
* :class:`TaskEncoders` (``task_encoders``): one encoder per task -> ONE
  shared embedding layer -> heads, the many-encoders / shared-layer pattern of
  Luong, Le, Sutskever, Vinyals & Kaiser, "Multi-task Sequence to Sequence
  Learning", ICLR 2016, arXiv:1511.06114.

In both, the shared layers process K task-specific representations (batched
as one op), so there is no single shared representation and no
``encode``/``decode``.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.heads import Head
from mtl_jax.models.trunks import activation, build_trunk
from mtl_jax.tasks import Task


def _positive_int(value, field: str) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"{field} must be a positive integer, got {value!r}.")
  return value


def _head_args(config) -> tuple[tuple[int, ...], str]:
  head = config.get("head", None) or {}
  return tuple(head.get("hidden", ())), head.get("act", "relu")


class TaskConv(nnx.Module):
  """Shared conv blocks, a per-task conv, then the shared dense layer.

  Config (``config.model``): ``trunk`` (must be ``kind='cnn'`` with at least
  one conv block), ``head`` and ``task_kernel_size`` (default 3).

  Shared (``shared``): the CNN trunk: all its conv blocks (the encoder) and
  its final dense layer (the decoding layer, applied to every task's feature
  map). Task-specific (``tasks[name]``): ``conv`` (a ``k x k`` convolution,
  ``C -> C`` channels on the encoder's output, 'SAME' padding, followed by the
  trunk's activation) and ``head``.
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], config, *,
               rngs: nnx.Rngs):
    kind = config.trunk.get("kind", "mlp")
    if kind != "cnn":
      raise ValueError(f"task_conv needs model.trunk.kind='cnn', got {kind!r}.")
    if not tuple(config.trunk.get("channels", (16, 32))):
      raise ValueError("task_conv needs at least one conv block in "
                       "model.trunk.channels, got ().")
    size = _positive_int(config.get("task_kernel_size", 3), "model.task_kernel_size")
    tasks = sorted(tasks, key=lambda t: t.name)
    self.names = tuple(t.name for t in tasks)
    self.shared = build_trunk(config.trunk, input_shape, rngs=rngs)
    channels = self.shared.stage_width(len(self.shared.convs) - 1)
    hidden, act = _head_args(config)
    self.tasks = nnx.Dict({
        t.name: nnx.Dict(
            conv=nnx.Conv(channels, channels, (size, size), rngs=rngs),
            head=Head(self.shared.out_features, t, hidden, act=act, rngs=rngs))
        for t in tasks})

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    n = len(self.shared.convs)
    for i in range(n):
      x = self.shared.stage(i, x, train=train)
    fn = activation(self.shared.act)
    maps = jnp.stack([fn(self.tasks[name]["conv"](x)) for name in self.names])
    k, b = maps.shape[:2]
    z = self.shared.stage(n, maps.reshape(k * b, *maps.shape[2:]), train=train)
    z = z.reshape(k, b, -1)
    return {name: self.tasks[name]["head"](z[i], train=train)
            for i, name in enumerate(self.names)}


class TaskEncoders(nnx.Module):
  """Per-task encoders feeding one shared embedding layer, then heads.

  Config (``config.model``): ``trunk`` (each task's encoder, MLP or CNN),
  ``head`` and ``embedding_dim`` (default: the encoder's output width).

  Shared (``shared``): the embedding layer, ``Dense(encoder width ->
  embedding_dim)`` + the trunk's activation, applied to every task's
  encoding. Task-specific (``tasks[name]``): ``encoder`` and ``head``.
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], config, *,
               rngs: nnx.Rngs):
    tasks = sorted(tasks, key=lambda t: t.name)
    self.names = tuple(t.name for t in tasks)
    encoders = [build_trunk(config.trunk, input_shape, rngs=rngs) for _ in tasks]
    width = encoders[0].out_features
    dim = _positive_int(config.get("embedding_dim", width), "model.embedding_dim")
    self.act = config.trunk.get("act", "relu")
    self.shared = nnx.Linear(width, dim, rngs=rngs)
    hidden, act = _head_args(config)
    self.tasks = nnx.Dict({
        t.name: nnx.Dict(encoder=enc, head=Head(dim, t, hidden, act=act, rngs=rngs))
        for t, enc in zip(tasks, encoders)})

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    z = jnp.stack([self.tasks[name]["encoder"](x, train=train) for name in self.names])
    e = activation(self.act)(self.shared(z))  # [K, B, embedding_dim], one matmul
    return {name: self.tasks[name]["head"](e[i], train=train)
            for i, name in enumerate(self.names)}
