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
``encode``/``decode``. Both end in a dense layer (a vector per example), so
dense (per-pixel) tasks are refused when the model is built.

Usage::

  models.build(tasks, (H, W, C), arch="task_conv",
               trunk=dict(kind="cnn", channels=(16, 32), features=64),
               task_kernel_size=3, head=dict(hidden=(), act="relu"))
  models.build(tasks, input_shape, arch="task_encoders",
               trunk=dict(kind="mlp", hidden=(64, 32)), embedding_dim=32,
               head=dict(hidden=(), act="relu"))
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.heads import HEAD, Head, head_options, refuse_dense
from mtl_jax.models.trunks import activation, build_trunk, trunk_options
from mtl_jax.tasks import Task
from mtl_jax.validators import positive_int


class TaskConv(nnx.Module):
  """Shared conv blocks, a per-task conv, then the shared dense layer.

  Shared (``shared``): the CNN trunk: all its conv blocks (the encoder) and
  its final dense layer (the decoding layer, applied to every task's feature
  map). Task-specific (``tasks[name]``): ``conv`` (a ``k x k`` convolution,
  ``C -> C`` channels on the encoder's output, 'SAME' padding, followed by the
  trunk's activation) and ``head``.

  Args:
    tasks: the tasks.
    input_shape: ``(H, W, C)`` of one example.
    rngs: initialisation keys.
    trunk: the shared CNN: keyword options of
      :func:`~mtl_jax.models.trunks.build_trunk`; ``kind`` must be ``'cnn'``
      and ``channels`` must have at least one conv block.
    task_kernel_size: window ``k`` of each task's convolution.
    head: each task's head: ``hidden`` (default ``()``) and ``act`` (default
      ``'relu'``).
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], *,
               rngs: nnx.Rngs, trunk: Mapping[str, Any], task_kernel_size: int = 3,
               head: Mapping[str, Any] = HEAD):
    owner = type(self).__name__
    refuse_dense(tasks, owner, "its shared decoding layer is the CNN's dense layer "
                 "(a vector per example)")
    trunk, head = trunk_options(trunk, owner), head_options(head, owner)
    if trunk["kind"] != "cnn":
      raise ValueError(f"task_conv needs trunk.kind='cnn', got {trunk['kind']!r}.")
    if not tuple(trunk["channels"]):
      raise ValueError("task_conv needs at least one conv block in trunk.channels, "
                       "got ().")
    size = positive_int(task_kernel_size, f"{owner}: task_kernel_size")
    tasks = sorted(tasks, key=lambda t: t.name)
    self.names = tuple(t.name for t in tasks)
    self.shared = build_trunk(input_shape, rngs=rngs, **trunk)
    channels = self.shared.stage_width(len(self.shared.convs) - 1)
    hidden, act = tuple(head["hidden"]), head["act"]
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

  Shared (``shared``): the embedding layer, ``Dense(encoder width ->
  embedding_dim)`` + the trunk's activation, applied to every task's
  encoding. Task-specific (``tasks[name]``): ``encoder`` and ``head``.

  Args:
    tasks: the tasks.
    input_shape: shape of one example.
    rngs: initialisation keys.
    trunk: each task's encoder, MLP or CNN: keyword options of
      :func:`~mtl_jax.models.trunks.build_trunk`.
    embedding_dim: width of the shared embedding layer; None (the default)
      gives the encoder's output width.
    head: each task's head: ``hidden`` (default ``()``) and ``act`` (default
      ``'relu'``).
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], *,
               rngs: nnx.Rngs, trunk: Mapping[str, Any],
               embedding_dim: Optional[int] = None, head: Mapping[str, Any] = HEAD):
    owner = type(self).__name__
    refuse_dense(tasks, owner, "its shared embedding layer is a dense layer (a vector "
                 "per example)")
    trunk, head = trunk_options(trunk, owner), head_options(head, owner)
    tasks = sorted(tasks, key=lambda t: t.name)
    self.names = tuple(t.name for t in tasks)
    encoders = [build_trunk(input_shape, rngs=rngs, **trunk) for _ in tasks]
    width = encoders[0].out_features
    dim = positive_int(width if embedding_dim is None else embedding_dim,
                       f"{owner}: embedding_dim")
    self.act = trunk["act"]
    self.shared = nnx.Linear(width, dim, rngs=rngs)
    hidden, act = tuple(head["hidden"]), head["act"]
    self.tasks = nnx.Dict({
        t.name: nnx.Dict(encoder=enc, head=Head(dim, t, hidden, act=act, rngs=rngs))
        for t, enc in zip(tasks, encoders)})

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    z = jnp.stack([self.tasks[name]["encoder"](x, train=train) for name in self.names])
    e = activation(self.act)(self.shared(z))  # [K, B, embedding_dim], one matmul
    return {name: self.tasks[name]["head"](e[i], train=train)
            for i, name in enumerate(self.names)}
