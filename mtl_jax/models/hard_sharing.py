"""Hard parameter sharing: one shared trunk, one head per task.

Caruana, "Multitask Learning", Machine Learning 28, 1997. The trunk's output
is the single shared representation, so the representation-level engine
(MGDA-UB, Sener & Koltun, NeurIPS 2018) applies through ``encode``/``decode``.

With a trunk that gives a feature map (``segnet``, ``dilated_resnet``) the
shared representation is that map ``[B, h, w, C]``: dense tasks get dense
heads (:mod:`mtl_jax.models.dense_heads`), per-example tasks a head on the
globally pooled map, and the representation engine differentiates w.r.t. the
map. ``trunk=dict(kind="segnet")`` with the default ``head`` is the MTAN
paper's "Split (standard)" NYUv2 baseline (lorenmt/mtan
``im2im_pred/model_segnet_split.py``); ``trunk=dict(kind="dilated_resnet")``
with ``head=dict(dense="aspp")`` is LibMTL's NYUv2 / Cityscapes HPS model.

Usage::

  models.build(tasks, input_shape, arch="hard_sharing",
               trunk=dict(kind="mlp", hidden=(256, 128), act="relu"),
               head=dict(hidden=(), act="relu"))
  models.build(tasks, (288, 384, 3), arch="hard_sharing",
               trunk=dict(kind="dilated_resnet", depth=50),
               head=dict(dense="aspp", aspp_rates=(12, 24, 36), aspp_width=256))
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
from flax import nnx

from mtl_jax.models.heads import HEAD, build_heads, head_options
from mtl_jax.models.trunks import build_trunk, trunk_options
from mtl_jax.tasks import Task


class HardSharing(nnx.Module):
  """``shared`` trunk + ``tasks`` heads.

  Args:
    tasks: the tasks, one head each.
    input_shape: shape of one example.
    rngs: initialisation keys.
    trunk: the shared trunk: keyword options of
      :func:`~mtl_jax.models.trunks.build_trunk` (``kind``, ``hidden``,
      ``channels``, ...).
    head: each task's head: ``hidden`` (default ``()``) and ``act`` (default
      ``'relu'``) for per-example tasks; ``dense`` (``'conv'`` or ``'aspp'``),
      ``dense_width``, ``dense_act``, ``aspp_rates``, ``aspp_width`` for dense
      tasks (see :mod:`mtl_jax.models.heads`).

  Raises:
    ValueError: for a dense task on a trunk that gives a vector.
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], *,
               rngs: nnx.Rngs, trunk: Mapping[str, Any],
               head: Mapping[str, Any] = HEAD):
    owner = type(self).__name__
    trunk, head = trunk_options(trunk, owner), head_options(head, owner)
    self.shared = build_trunk(input_shape, rngs=rngs, **trunk)
    self.tasks = build_heads(tasks, self.shared, rngs=rngs, input_shape=input_shape,
                             owner=owner, **head)

  def encode(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """The shared representation ``[B, features]``, or the feature map
    ``[B, h, w, C]`` of a spatial trunk."""
    return self.shared(x, train=train)

  def decode(self, z, *, train: bool = False) -> dict[str, jax.Array]:
    """Per-task outputs from the shared representation.

    ``z`` is the representation, or ``{task: z_t}`` with one copy per task:
    task ``t``'s output depends on ``z_t`` only, so one VJP of the summed
    losses gives every task's gradient w.r.t. the representation (the
    representation engine relies on this contract).
    """
    zs = z if isinstance(z, dict) else {name: z for name in self.tasks}
    return {name: head(zs[name], train=train) for name, head in self.tasks.items()}

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    return self.decode(self.encode(x, train=train), train=train)
