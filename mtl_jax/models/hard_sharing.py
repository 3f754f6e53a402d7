"""Hard parameter sharing: one shared trunk, one head per task.

Caruana, "Multitask Learning", Machine Learning 28, 1997. The trunk's output
is the single shared representation, so the representation-level engine
(MGDA-UB, Sener & Koltun, NeurIPS 2018) applies through ``encode``/``decode``.

Usage::

  models.build(tasks, input_shape, arch="hard_sharing",
               trunk=dict(kind="mlp", hidden=(256, 128), act="relu"),
               head=dict(hidden=(), act="relu"))
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
      ``'relu'``).
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], *,
               rngs: nnx.Rngs, trunk: Mapping[str, Any],
               head: Mapping[str, Any] = HEAD):
    owner = type(self).__name__
    trunk, head = trunk_options(trunk, owner), head_options(head, owner)
    self.shared = build_trunk(input_shape, rngs=rngs, **trunk)
    self.tasks = build_heads(tasks, self.shared.out_features, rngs=rngs, **head)

  def encode(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    """The shared representation ``[B, features]``."""
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
