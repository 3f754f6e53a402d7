"""MTAN on SegNet: task attention at every encoder and decoder stage (NYUv2's network).

Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention",
CVPR 2019, arXiv:1803.10704, Section 3 and Figure 2; authors' code:
lorenmt/mtan ``im2im_pred/model_segnet_mtan.py``. Reached as
``models.build(..., arch="mtan", trunk=dict(kind="segnet", ...))``
(:class:`mtl_jax.models.mtan.MTAN` dispatches here).

The shared network is the SegNet of :mod:`mtl_jax.models.segnet` (encoder
stage ``j`` gives ``u_j``, its first layer's output, and ``p_j``, its last
layer's output before pooling; decoder step ``i`` gives its unpooled input
``v_i`` and its output ``q_i``). Task ``t`` attends at every stage with a
module ``att(x) = sigmoid(BN(conv1x1(ReLU(BN(conv1x1(x))))))`` (``g`` then
``h``):

    encoder, j = 0..J-1:  a_j = att^t_j([u_j ; e_{j-1}]) * p_j      (e_{-1}: none)
                          e_j = maxpool(f_j(a_j))
    decoder, i = 0..J-1:  d_i = f'_i(up2(b_{i-1}))                    (b_{-1} = e_{J-1})
                          b_i = att'^t_i([v_i ; d_i]) * q_i
    y_t = head_t(b_{J-1})

with ``f_j``, ``f'_i`` conv3x3-BN-ReLU blocks *shared by all tasks* (the
authors' ``encoder_block_att`` / ``decoder_block_att``; ``f_j: c_j ->
c_{j+1}``, the last ``c_{J-1} -> c_{J-1}``; ``f'`` at decoder stage ``j``:
``c_j -> c_{j-1}``, ``c_0 -> c_0`` at ``j = 0``), ``up2`` bilinear 2x
upsampling with ``align_corners=True``, the attention widths of the
authors' ``att_layer`` (encoder stage ``j``: ``[c_j (j = 0) or 2 c_j] -> c_j
-> c_j``; decoder stage ``j``: ``c_j + c_{j-1} -> c_{j-1} -> c_{j-1}``) and
the dense heads of :mod:`mtl_jax.models.dense_heads` (``'conv'``: the
authors' ``pred_task`` conv3x3 -> conv1x1).

Parameter count at the paper's sizes (3-channel input, channels
``(64, 128, 256, 512, 512)``, VGG-16 layers, 13-class segmentation, depth,
normals): 44,229,073, the authors' count of 44,229,076 (``count_parameters``
of their ``SegNet_MTAN``, 1.77 times their single-task SegNet's 24,981,069 as
in the paper's Table) minus the 3 entries of their ``logsigma``, which belong to
uncertainty weighting here (:mod:`mtl_jax.weighting`), not to the model.
``tests/models/test_mtan_segnet.py`` derives it layer by layer from the
authors' code. Departures from their code: the heads output raw values
(their model applies ``log_softmax`` to segmentation and L2-normalises the
normals; here the losses do), the convolutions of the heads use Flax's
default (LeCun-normal) initialisation where theirs are Xavier-normal, and
the generic widths ``f_{J-1}: c_{J-1} -> c_{J-1}`` / ``f'`` at ``J-1``:
``c_{J-1} -> c_{J-2}`` coincide with theirs because ``c_3 = c_4 = 512``.

Groups: the SegNet and the shared ``f``, ``f'`` blocks are ``shared``; each
task's attention modules and head are under ``tasks[name]``. Attention is
per task, so there is no single shared representation (no ``encode`` /
``decode``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.dense_heads import resize_bilinear
from mtl_jax.models.heads import make_head
from mtl_jax.models.segnet import ConvBlock, SegNet
from mtl_jax.models.trunks import max_pool_2x2
from mtl_jax.tasks import Task


class SharedSegNet(nnx.Module):
  """The shared part: the SegNet and the attention path's shared blocks.

  It gives the heads a feature map of ``out_features = c_0`` channels at
  stride 1 (the attended decoder output).
  """

  kind = "segnet"
  spatial = True
  stride = 1

  def __init__(self, input_shape: Sequence[int], channels: Sequence[int],
               layers: Sequence[int] | None, *, rngs: nnx.Rngs):
    self.segnet = SegNet(input_shape, channels, layers, rngs=rngs)
    c = self.segnet.channels
    nxt = c[1:] + c[-1:]   # f_j: c_j -> c_{j+1}; the last keeps c_{J-1}
    prev = c[:1] + c[:-1]  # f'_j: c_j -> c_{j-1}; c_0 -> c_0
    self.encoder_f = nnx.List([ConvBlock(a, b, rngs=rngs) for a, b in zip(c, nxt)])
    self.decoder_f = nnx.List([ConvBlock(a, b, rngs=rngs) for a, b in zip(c, prev)])
    self.out_features = c[0]


class Attention(nnx.Module):
  """``sigmoid(BN(conv1x1(ReLU(BN(conv1x1(x))))))``: the authors' ``att_layer``
  (``norm=False`` drops the batch norms)."""

  def __init__(self, a: int, b: int, c: int, *, norm: bool, rngs: nnx.Rngs):
    self.g = nnx.Conv(a, b, (1, 1), rngs=rngs)
    self.h = nnx.Conv(b, c, (1, 1), rngs=rngs)
    self.g_norm = nnx.BatchNorm(b, rngs=rngs) if norm else None
    self.h_norm = nnx.BatchNorm(c, rngs=rngs) if norm else None

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    y = self.g(x)
    if self.g_norm is not None:
      y = self.g_norm(y, use_running_average=not train)
    y = self.h(nnx.relu(y))
    if self.h_norm is not None:
      y = self.h_norm(y, use_running_average=not train)
    return jax.nn.sigmoid(y)


class TaskAttention(nnx.Module):
  """One task's encoder and decoder attention modules and its head."""

  def __init__(self, shared: SharedSegNet, task: Task, input_shape: Sequence[int], *,
               head: Mapping[str, Any], norm: bool, owner: str, rngs: nnx.Rngs):
    c = shared.segnet.channels
    prev = c[:1] + c[:-1]
    self.encoder = nnx.List([
        Attention(c[j] * (1 if j == 0 else 2), c[j], c[j], norm=norm, rngs=rngs)
        for j in range(len(c))])
    self.decoder = nnx.List([
        Attention(c[j] + prev[j], prev[j], prev[j], norm=norm, rngs=rngs)
        for j in range(len(c))])
    self.head = make_head(task, shared, rngs=rngs, input_shape=input_shape, owner=owner,
                          **head)

  def attend(self, shared: SharedSegNet, trace, *, train: bool = False) -> jax.Array:
    """The task's attended decoder output ``b_{J-1}`` ``[B, H, W, c_0]``."""
    carry = None
    for j, (u, p) in enumerate(zip(trace.first, trace.last)):
      x = u if carry is None else jnp.concatenate([u, carry], axis=-1)
      attended = self.encoder[j](x, train=train) * p
      carry = max_pool_2x2(shared.encoder_f[j](attended, train=train))
    num = len(trace.first)
    for i, (v, q) in enumerate(zip(trace.unpooled, trace.decoded)):
      j = num - 1 - i
      up = resize_bilinear(carry, (2 * carry.shape[1], 2 * carry.shape[2]))
      d = shared.decoder_f[j](up, train=train)
      carry = self.decoder[j](jnp.concatenate([v, d], axis=-1), train=train) * q
    return carry


def build(tasks: Sequence[Task], input_shape: Sequence[int], *, channels: Sequence[int],
          layers: Sequence[int] | None, head: Mapping[str, Any], norm: bool, owner: str,
          rngs: nnx.Rngs) -> tuple[SharedSegNet, nnx.Dict]:
  """The ``shared`` module and the ``tasks`` dict of MTAN on SegNet."""
  shared = SharedSegNet(input_shape, channels, layers, rngs=rngs)
  per_task = nnx.Dict({t.name: TaskAttention(shared, t, input_shape, head=head, norm=norm,
                                             owner=owner, rngs=rngs)
                       for t in tasks})
  return shared, per_task


def forward(shared: SharedSegNet, tasks: nnx.Dict, x: jax.Array, *,
            train: bool = False) -> dict[str, jax.Array]:
  """Every task's output."""
  trace = shared.segnet.trace(x, train=train)
  return {name: att.head(att.attend(shared, trace, train=train), train=train)
          for name, att in tasks.items()}
