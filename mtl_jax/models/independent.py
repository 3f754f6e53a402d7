"""Independent single-task networks: the single-task baseline.

Each task gets a full copy of the trunk and head built from the same options
as the hard-sharing model (``trunk``, ``head``), and nothing is shared. Training this model on the summed
loss trains every single-task network on its own loss (parameters are
disjoint, so each one's gradient is exactly its task's gradient), which is how
``mtl-jax compare`` obtains all baselines in one compiled run.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
from flax import nnx

from mtl_jax.models.hard_sharing import HardSharing
from mtl_jax.models.heads import HEAD, head_options
from mtl_jax.models.trunks import trunk_options
from mtl_jax.tasks import Task


class Independent(nnx.Module):
  """One :class:`HardSharing` network of a single task per task, under ``tasks``.

  Args:
    tasks: the tasks, one network each.
    input_shape: shape of one example.
    rngs: initialisation keys.
    trunk: each network's trunk (as :class:`HardSharing`).
    head: each network's head (as :class:`HardSharing`).
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], *,
               rngs: nnx.Rngs, trunk: Mapping[str, Any],
               head: Mapping[str, Any] = HEAD):
    owner = type(self).__name__
    trunk, head = trunk_options(trunk, owner), head_options(head, owner)
    self.tasks = nnx.Dict({t.name: HardSharing((t,), input_shape, trunk=trunk, head=head,
                                               rngs=rngs)
                           for t in tasks})

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    return {name: net(x, train=train)[name] for name, net in self.tasks.items()}
