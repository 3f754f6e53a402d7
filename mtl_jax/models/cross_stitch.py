"""Cross-stitch networks and sluice networks: one column per task, mixed per layer.

Misra, Shrivastava, Gupta & Hebert, "Cross-stitch Networks for Multi-task
Learning", CVPR 2016, arXiv:1604.03539: after every layer, each task's column
takes a learned linear combination of all columns' activations,
``h'_i = sum_j alpha_ij h_j`` (one ``K x K`` unit per layer).

Ruder, Bingel, Augenstein & Søgaard, "Latent Multi-task Architecture
Learning" (sluice networks), AAAI 2019, arXiv:1705.08142: each layer's output
is split into ``m`` subspaces along the feature (channel) axis and the
``K m`` subspaces are mixed by a ``Km x Km`` matrix; each task's head reads a
learned combination ``sum_l beta_{t,l} h_{t,l}`` of its column's layer
outputs (CNN feature maps globally average-pooled). The paper's subspace
orthogonality loss is the penalty ``sluice_orthogonality``
(:mod:`mtl_jax.penalties.sluice_orthogonality`, on the columns' kernels).

Parameter layout:

* ``tasks[name]``: ``column`` (a trunk built from the ``trunk`` option, MLP or
  CNN, not tied to one backbone) and ``head``.
* ``cross``: ``alpha`` ``[L, Km, Km]`` (one unit per trunk stage, ``m = 1``
  for cross-stitch); ``beta`` ``[K, L]`` with ``sluice=True``.
* ``shared``: empty; no single shared representation, so no
  ``encode``/``decode``.

Dense tasks: with columns that give feature maps (``trunk.kind`` 'segnet' or
'dilated_resnet') the units mix the columns' maps after every stage (SegNet:
every encoder stage, after its pooling, and every decoder stage; each
column unpools with its own encoder's pooling positions) and each task gets a
dense head (:mod:`mtl_jax.models.heads`) on its column's map.

Usage::

  models.build(tasks, input_shape, arch="cross_stitch",
               trunk=dict(kind="mlp", hidden=(64, 64, 64)),   # each column
               alpha_self=0.9, sluice=False,   # sluice=True: subspaces=2 by default
               head=dict(hidden=(), act="relu"))
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.heads import HEAD, head_options, make_head, refuse_dense
from mtl_jax.models.trunks import build_trunk, global_pool, trunk_options
from mtl_jax.tasks import Task
from mtl_jax.validators import boolean, positive_int


def init_alpha(size: int, alpha_self: float) -> jax.Array:
  """``alpha_self`` on the diagonal, the rest of each row spread evenly.

  Rows sum to one, so the unit starts as a convex combination close to the
  identity (independent columns); ``size == 1`` gives ``[[1]]``.
  """
  if size == 1:
    return jnp.ones((1, 1))
  off = (1.0 - alpha_self) / (size - 1)
  return jnp.full((size, size), off) + (alpha_self - off) * jnp.eye(size)


def mix(alpha: jax.Array, h: jax.Array, subspaces: int = 1) -> jax.Array:
  """Applies one cross-stitch / sluice unit.

  Args:
    alpha: ``[K m, K m]`` mixing matrix; row ``(i, a)`` is the new subspace
      ``a`` of task ``i`` (index ``i * m + a``).
    h: ``[K, B, ..., C]`` stacked column activations.
    subspaces: ``m``; must divide ``C``.

  Returns:
    ``[K, B, ..., C]`` with ``h'[i, ..., a-th block] = sum_{j,b}
    alpha[(i,a), (j,b)] h[j, ..., b-th block]``.
  """
  k, c = h.shape[0], h.shape[-1]
  blocks = h.reshape(*h.shape[:-1], subspaces, c // subspaces)
  blocks = jnp.moveaxis(blocks, -2, 1).reshape(k * subspaces, *h.shape[1:-1], -1)
  mixed = jnp.tensordot(alpha.astype(h.dtype), blocks, axes=1)
  mixed = jnp.moveaxis(mixed.reshape(k, subspaces, *h.shape[1:-1], -1), 1, -2)
  return mixed.reshape(h.shape)


def _check(owner: str, alpha_self: Any, sluice: Any, subspaces: Any,
           widths: Sequence[int]) -> tuple[float, bool, int]:
  if isinstance(alpha_self, bool) or not isinstance(alpha_self, (int, float)) \
      or not 0.0 <= alpha_self <= 1.0:
    raise ValueError(f"{owner}: alpha_self must be a number in [0, 1], got "
                     f"{alpha_self!r}.")
  sluice = boolean(sluice, f"{owner}: sluice")
  m = positive_int(subspaces, f"{owner}: subspaces") if sluice else 1
  bad = [w for w in widths if w % m]
  if bad:
    raise ValueError(f"{owner}: subspaces={m} must divide every layer width; "
                     f"widths are {list(widths)}.")
  if sluice and len(set(widths)) != 1:
    raise ValueError(f"{owner}: sluice=True combines all layer outputs, so every layer "
                     f"needs the same width; got widths {list(widths)}.")
  return float(alpha_self), sluice, m


class CrossStitch(nnx.Module):
  """Per-task columns (``tasks``) mixed after every stage by ``cross`` units.

  Stages are those of the trunk's ``stage`` method: one per MLP layer, one
  per CNN conv block plus the CNN's dense layer. Every unit starts at
  :func:`init_alpha` (rows sum to one); sluice's ``beta`` starts at the last
  layer only, so with identity units both variants are exactly K independent
  columns.

  Args:
    tasks: the tasks, one column each.
    input_shape: shape of one example.
    rngs: initialisation keys.
    trunk: each column, an MLP or a CNN: keyword options of
      :func:`~mtl_jax.models.trunks.build_trunk`.
    alpha_self: initial diagonal of every unit, in ``[0, 1]``.
    sluice: sluice network (subspaces and the ``beta`` layer combination)
      instead of cross-stitch.
    subspaces: sluice only: subspaces ``m`` per layer; must divide every
      layer width.
    head: each task's head: ``hidden`` (default ``()``) and ``act`` (default
      ``'relu'``).
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], *,
               rngs: nnx.Rngs, trunk: Mapping[str, Any], alpha_self: float = 0.9,
               sluice: bool = False, subspaces: int = 2, head: Mapping[str, Any] = HEAD):
    owner = type(self).__name__
    trunk, head = trunk_options(trunk, owner), head_options(head, owner)
    if sluice is True:
      refuse_dense(tasks, owner, "sluice=True combines globally pooled layer outputs "
                   "(a vector per example)")
    tasks = sorted(tasks, key=lambda t: t.name)
    self.names = tuple(t.name for t in tasks)
    columns = [build_trunk(input_shape, rngs=rngs, **trunk) for _ in tasks]
    self.num_layers = columns[0].num_stages
    widths = [columns[0].stage_width(i) for i in range(self.num_layers)]
    alpha_self, self.sluice, self.subspaces = _check(owner, alpha_self, sluice, subspaces,
                                                     widths)
    self.tasks = nnx.Dict({
        t.name: nnx.Dict(column=col, head=make_head(t, col, rngs=rngs,
                                                    input_shape=input_shape,
                                                    owner=owner, **head))
        for t, col in zip(tasks, columns)})
    unit = init_alpha(len(tasks) * self.subspaces, alpha_self)
    cross = {"alpha": nnx.Param(jnp.tile(unit, (self.num_layers, 1, 1)))}
    if self.sluice:
      beta = jnp.zeros((len(tasks), self.num_layers)).at[:, -1].set(1.0)
      cross["beta"] = nnx.Param(beta)
    self.cross = nnx.Dict(cross)

  def stitched(self, x: jax.Array, *, train: bool = False) -> list[jax.Array]:
    """Mixed activations ``[K, B, ...]`` after every stage's unit."""
    h = [x] * len(self.names)
    carries = [()] * len(self.names)  # SegNet columns: their pooling masks.
    out = []
    for layer in range(self.num_layers):
      outs = []
      for k, name in enumerate(self.names):
        column = self.tasks[name]["column"]
        if hasattr(column, "stage_carry"):
          y, carries[k] = column.stage_carry(layer, h[k], carries[k], train=train)
        else:
          y = column.stage(layer, h[k], train=train)
        outs.append(y)
      h = jnp.stack(outs)
      h = mix(self.cross["alpha"][layer], h, self.subspaces)
      out.append(h)
    return out

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    layers = self.stitched(x, train=train)
    if self.sluice:
      pooled = jnp.stack([jax.vmap(global_pool)(h) for h in layers], axis=1)  # [K, L, B, C]
      z = jnp.einsum("kl,klbc->kbc", self.cross["beta"][...], pooled)
    else:
      z = layers[-1]
    return {name: self.tasks[name]["head"](z[k], train=train)
            for k, name in enumerate(self.names)}
