"""Hard parameter sharing: one shared trunk, one head per task.

Caruana, "Multitask Learning", Machine Learning 28, 1997. The trunk's output
is the single shared representation, so the representation-level engine
(MGDA-UB, Sener & Koltun, NeurIPS 2018) applies through ``encode``/``decode``.
"""

from __future__ import annotations

from typing import Sequence

import jax
from flax import nnx

from mtl_jax.models.heads import build_heads
from mtl_jax.models.trunks import build_trunk
from mtl_jax.tasks import Task


class HardSharing(nnx.Module):
  """``shared`` trunk + ``tasks`` heads."""

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], config, *,
               rngs: nnx.Rngs):
    self.shared = build_trunk(config.trunk, input_shape, rngs=rngs)
    self.tasks = build_heads(tasks, self.shared.out_features, config.head, rngs=rngs)

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
