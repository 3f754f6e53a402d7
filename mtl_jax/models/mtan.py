"""Multi-Task Attention Network (MTAN): a shared backbone, per-task soft masks.

Liu, Johns, Davison, "End-to-End Multi-Task Learning with Attention",
CVPR 2019, arXiv:1803.10704.

The shared backbone is a stack of blocks; block ``j`` computes ``u_j`` (its
first layer) and ``p_j`` (its last layer). Each task ``i`` has an attention
module per block that learns a soft mask over the shared features:

    a_i^j = sigmoid(BN(h_i^j(act(BN(g_i^j([u_j ; f_i^{j-1}(pool(ahat_i^{j-1}))]))))))
    ahat_i^j = a_i^j * p_j                  (element-wise)

with ``g``, ``h`` 1x1 convolutions (dense layers in the MLP variant), ``BN``
batch normalisation (the paper's conv1x1-BN-ReLU-conv1x1-BN-sigmoid module)
and ``f`` a 3x3 convolution mapping the previous attended features to block
``j``'s width, ``act(BN(conv(.)))`` as in the authors' code (for ``j = 1`` the
input is ``u_1`` alone). Task ``i``'s features are the attended output of the
last block passed through the backbone's final (shared) layer; the shared
features are the same without masks, so with every mask equal to 1 the task
features *are* the shared features. ``attention_norm=False`` drops the batch
norms (the attention path is then plain convolutions). Deviations: the 3x3
``f`` is applied after pooling (cheaper; the same resolution results), and it
is per task (the authors' code shares one ``f`` between tasks).

Groups: the backbone is ``shared``; each task's attention modules (``g``,
``h``, ``f``, their batch norms ``g_norm``, ``h_norm``, ``f_norm``) and head
are under ``tasks[name]``; the batch statistics are non-parameter state
(``rest``, at the same paths). Attention is per task, so there is no single
shared representation (no ``encode``/``decode``).

On SegNet (``trunk=dict(kind="segnet", channels=..., layers=...)``) MTAN is
the paper's NYUv2 network, with attention at every encoder and decoder stage
and dense heads: see :mod:`mtl_jax.models.mtan_segnet`, which this class
dispatches to (same options; ``features``, ``kernel_size``, ``act`` and
``hidden`` do not apply there). Dense tasks need that trunk: the cnn and mlp
backbones end in a vector per example and refuse them.

Usage::

  models.build(tasks, (288, 384, 3), arch="mtan",
               trunk=dict(kind="segnet"),   # channels=(64, 128, 256, 512, 512)
               head=dict(dense="conv"))     # the authors' conv3x3 -> conv1x1 heads
  models.build(tasks, input_shape, arch="mtan",
               trunk=dict(kind="cnn", channels=(16, 32), features=64, kernel_size=3,
                          act="relu"),
               # or trunk=dict(kind="mlp", hidden=(64, 32), act="relu")  (block widths)
               attention_norm=True,     # batch norm in the attention modules (the paper's)
               head=dict(hidden=(), act="relu"))
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models import mtan_segnet
from mtl_jax.models.heads import HEAD, Head, head_options, refuse_dense
from mtl_jax.models.options import frozen, group
from mtl_jax.models.trunks import activation, flat_size
from mtl_jax.tasks import Task
from mtl_jax.validators import boolean, choice, positive_int, widths

# The keys of MTAN's ``trunk`` option and their defaults (``channels``,
# ``features`` and ``kernel_size`` for cnn; ``hidden`` for mlp; ``channels``
# and ``layers`` for segnet; ``channels=None``: (16, 32) for cnn, the paper's
# (64, 128, 256, 512, 512) for segnet).
TRUNK = frozen(kind="cnn", channels=None, features=64, kernel_size=3, act="relu",
               hidden=(64, 32), layers=None)
KINDS = ("cnn", "mlp", "segnet")
CNN_CHANNELS = (16, 32)


def _wide(cnn: bool, kernel_size: int, a: int, b: int, rngs: nnx.Rngs) -> nnx.Module:
  """A 3x3 (``kernel_size``) convolution, or a dense layer in the MLP variant."""
  k = kernel_size
  return nnx.Conv(a, b, (k, k), rngs=rngs) if cnn else nnx.Linear(a, b, rngs=rngs)


def _point(cnn: bool, a: int, b: int, rngs: nnx.Rngs) -> nnx.Module:
  """A 1x1 convolution, or a dense layer in the MLP variant."""
  return nnx.Conv(a, b, (1, 1), rngs=rngs) if cnn else nnx.Linear(a, b, rngs=rngs)


def _pool(cnn: bool, x: jax.Array) -> jax.Array:
  """2x2 max-pooling, or the identity in the MLP variant."""
  return nnx.max_pool(x, (2, 2), strides=(2, 2)) if cnn else x


class Backbone(nnx.Module):
  """Shared blocks (``u_j = act(first(x))``, ``p_j = act(second(u_j))``, pool)
  and a final layer mapping the last block's output to features."""

  def __init__(self, input_shape: Sequence[int], *, rngs: nnx.Rngs, kind: str = "cnn",
               channels: Sequence[int] = (16, 32), features: int = 64,
               kernel_size: int = 3, act: str = "relu", hidden: Sequence[int] = (64, 32),
               owner: str = "MTAN"):
    choice(kind, f"{owner}: trunk.kind", ("cnn", "mlp"))
    self.cnn = kind == "cnn"
    self.kernel_size = positive_int(kernel_size, f"{owner}: trunk.kernel_size")
    self.act = act
    activation(self.act)  # Validates the name.
    if kind == "cnn":
      self.widths = widths(channels, f"{owner}: trunk.channels")
      h, w, c = _image_shape(input_shape, len(self.widths))
      final_in = (h >> len(self.widths)) * (w >> len(self.widths)) * self.widths[-1]
      self.out_features = positive_int(features, f"{owner}: trunk.features")
      self.final = nnx.Linear(final_in, self.out_features, rngs=rngs)
    else:
      self.widths = widths(hidden, f"{owner}: trunk.hidden")
      c = flat_size(input_shape)
      self.out_features, self.final = self.widths[-1], None
    sizes = (c, *self.widths)
    wide = lambda a, b: _wide(self.cnn, self.kernel_size, a, b, rngs)
    self.first = nnx.List([wide(a, b) for a, b in zip(sizes, sizes[1:])])
    self.second = nnx.List([wide(b, b) for b in self.widths])

  def blocks(self, x: jax.Array) -> tuple[list, list]:
    """``([u_1..u_J], [p_1..p_J])`` of the shared blocks."""
    fn = activation(self.act)
    us, ps = [], []
    for first, second in zip(self.first, self.second):
      us.append(fn(first(x)))
      ps.append(fn(second(us[-1])))
      x = _pool(self.cnn, ps[-1])
    return us, ps

  def finish(self, p_last: jax.Array) -> jax.Array:
    """Features ``[B, out_features]`` from the last block's (attended) output."""
    if self.final is None:
      return p_last
    x = _pool(self.cnn, p_last)
    return activation(self.act)(self.final(x.reshape(x.shape[0], -1)))


def _image_shape(input_shape: Sequence[int], blocks: int) -> tuple[int, int, int]:
  if len(input_shape) != 3:
    raise ValueError(f"A cnn mtan needs (H, W, C) inputs, got {tuple(input_shape)}.")
  h, w, c = (int(d) for d in input_shape)
  if (h >> blocks) < 1 or (w >> blocks) < 1:
    raise ValueError(f"mtan: input {tuple(input_shape)} is too small for "
                     f"{blocks} pooling blocks.")
  return h, w, c


def _norms(enabled: bool, sizes: Sequence[int], rngs: nnx.Rngs) -> nnx.List:
  """One batch norm per size, or none."""
  return nnx.List([nnx.BatchNorm(c, rngs=rngs) for c in sizes] if enabled else [])


class TaskAttention(nnx.Module):
  """One task's attention modules (``g``, ``h`` per block; ``f`` between
  blocks), their batch norms (``attention_norm``) and its head."""

  def __init__(self, backbone: Backbone, task: Task, *, head: Mapping[str, Any] = HEAD,
               attention_norm: bool = True, rngs: nnx.Rngs):
    cnn, c = backbone.cnn, backbone.widths
    self.g = nnx.List([_point(cnn, c[j] * (1 if j == 0 else 2), c[j], rngs)
                       for j in range(len(c))])
    self.h = nnx.List([_point(cnn, c[j], c[j], rngs) for j in range(len(c))])
    self.f = nnx.List([_wide(cnn, backbone.kernel_size, c[j], c[j + 1], rngs)
                       for j in range(len(c) - 1)])
    self.g_norm = _norms(attention_norm, c, rngs)
    self.h_norm = _norms(attention_norm, c, rngs)
    self.f_norm = _norms(attention_norm, c[1:], rngs)
    self.head = Head(backbone.out_features, task, tuple(head["hidden"]), act=head["act"],
                     rngs=rngs)

  @staticmethod
  def _normed(layers: nnx.List, norms: nnx.List, j: int, x: jax.Array,
              train: bool) -> jax.Array:
    """``layers[j](x)``, then ``norms[j]`` when there are batch norms."""
    x = layers[j](x)
    return norms[j](x, use_running_average=not train) if len(norms) else x

  def attend(self, backbone: Backbone, us: list, ps: list, *,
             train: bool = False) -> jax.Array:
    """The attended output ``ahat^J`` of the last block."""
    fn = activation(backbone.act)
    carry = None
    for j, (u, p) in enumerate(zip(us, ps)):
      x = u if carry is None else jnp.concatenate([u, carry], axis=-1)
      hidden = fn(self._normed(self.g, self.g_norm, j, x, train))
      mask = jax.nn.sigmoid(self._normed(self.h, self.h_norm, j, hidden, train))
      attended = mask * p
      if j < len(self.f):
        pooled = _pool(backbone.cnn, attended)
        carry = fn(self._normed(self.f, self.f_norm, j, pooled, train))
    return attended


class MTAN(nnx.Module):
  """``shared`` backbone, ``tasks[name]`` = attention modules + head.

  Args:
    tasks: the tasks.
    input_shape: ``(H, W, C)`` (cnn) or any shape (mlp, flattened).
    rngs: initialisation keys.
    trunk: the shared backbone: ``kind`` (``'cnn'``, the default, ``'mlp'``
      or ``'segnet'``), ``act`` (default ``'relu'``); for cnn ``channels`` (of
      the blocks, default ``(16, 32)``), ``features`` (of the final dense
      layer, default 64) and ``kernel_size`` (default 3); for mlp ``hidden``
      (block widths, default ``(64, 32)``); for segnet ``channels`` (default
      ``(64, 128, 256, 512, 512)``) and ``layers`` (conv layers per stage,
      default VGG-16's ``(2, 2, 3, 3, 3)``).
    attention_norm: batch norm in the attention modules (the paper's).
    head: each task's head: ``hidden`` (default ``()``) and ``act`` (default
      ``'relu'``); on segnet also the dense head options (``dense``, ...,
      see :mod:`mtl_jax.models.heads`).
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], *,
               rngs: nnx.Rngs, trunk: Mapping[str, Any] = TRUNK,
               attention_norm: bool = True, head: Mapping[str, Any] = HEAD):
    owner = type(self).__name__
    trunk = group(trunk, f"{owner}: trunk", TRUNK)
    norm = boolean(attention_norm, f"{owner}: attention_norm")
    head = head_options(head, owner)
    kind = choice(trunk["kind"], f"{owner}: trunk.kind", KINDS)
    self.segnet = kind == "segnet"
    layers = trunk.pop("layers")
    if self.segnet:
      channels = widths(trunk["channels"] or mtan_segnet.SegNet.DEFAULT_CHANNELS,
                        f"{owner}: trunk.channels")
      if layers is not None:
        layers = widths(layers, f"{owner}: trunk.layers")
      self.shared, self.tasks = mtan_segnet.build(
          tasks, input_shape, channels=channels, layers=layers, head=head, norm=norm,
          owner=owner, rngs=rngs)
      return
    refuse_dense(tasks, owner, f"trunk kind {kind!r} ends in a vector per example "
                 "(use trunk.kind='segnet')")
    if trunk["channels"] is None:
      trunk["channels"] = CNN_CHANNELS
    self.shared = Backbone(input_shape, rngs=rngs, owner=owner, **trunk)
    self.tasks = nnx.Dict({t.name: TaskAttention(self.shared, t, head=head,
                                                 attention_norm=norm, rngs=rngs)
                           for t in tasks})

  def features(self, x: jax.Array, *, train: bool = False
               ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The shared features (no masks) and each task's attended features."""
    if self.segnet:
      raise ValueError("MTAN.features is for the cnn and mlp backbones; on segnet use "
                       "mtan_segnet (SegNet.trace and TaskAttention.attend).")
    if not self.shared.cnn:
      x = x.reshape(x.shape[0], -1)
    us, ps = self.shared.blocks(x)
    per_task = {name: self.shared.finish(att.attend(self.shared, us, ps, train=train))
                for name, att in self.tasks.items()}
    return self.shared.finish(ps[-1]), per_task

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    if self.segnet:
      return mtan_segnet.forward(self.shared, self.tasks, x, train=train)
    _, per_task = self.features(x, train=train)
    return {name: self.tasks[name].head(z) for name, z in per_task.items()}
