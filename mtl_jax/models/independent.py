"""Independent single-task networks: the single-task baseline.

Each task gets a full copy of the trunk and head built from the same config as
the multi-task model, and nothing is shared. Training this model on the summed
loss trains every single-task network on its own loss (parameters are
disjoint, so each one's gradient is exactly its task's gradient), which is how
``mtl-jax compare`` obtains all baselines in one compiled run.
"""

from __future__ import annotations

from typing import Sequence

import jax
from flax import nnx

from mtl_jax.models.hard_sharing import HardSharing
from mtl_jax.tasks import Task


class Independent(nnx.Module):
  """One :class:`HardSharing` network of a single task per task, under ``tasks``."""

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], config, *,
               rngs: nnx.Rngs):
    self.tasks = nnx.Dict({t.name: HardSharing((t,), input_shape, config, rngs=rngs)
                           for t in tasks})

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    return {name: net(x, train=train)[name] for name, net in self.tasks.items()}
