"""Progressive Layered Extraction (PLE): stacked CGC extraction networks.

Tang, Liu, Zhao, Gong, "Progressive Layered Extraction (PLE): A Novel
Multi-Task Learning (MTL) Model for Personalized Recommendations", RecSys 2020
(doi:10.1145/3383313.3412236), Section 4.3.

Level ``j`` has task experts ``E_{k,j}`` and shared experts ``E_{s,j}``
(:mod:`mtl_jax.models.cgc`). Task ``k``'s gate mixes its own and the shared
experts into the input of its next-level experts; at every level but the last a
*shared* gate mixes all experts (every task's and the shared ones) into the
input of the next-level shared experts:

    q_{k,j} = g_{k,j}(q_{k,j-1})^T [E_{k,j}(q_{k,j-1}); E_{s,j}(q_{s,j-1})]
    q_{s,j} = g_{s,j}(q_{s,j-1})^T [E_{1,j}; ...; E_{K,j}; E_{s,j}](...)
    y_k = t^k(q_{k,L}),   q_{k,0} = q_{s,0} = x

Thus tasks interact progressively: task ``k``'s output depends on task ``l``'s
experts of levels ``< L`` (through the shared path), never on task ``l``'s
last-level experts. With ``levels=1`` PLE is CGC.

Groups: shared experts and the inner shared gates are ``shared`` (every task
uses them); each task's experts, gates and tower are under ``tasks[name]``.
Note that a task's inner-level experts also feed the shared path, so they
receive gradient from every task; being task parameters, they are trained
with the weighted-sum gradient. No single shared representation (no
``encode``/``decode``).

Usage::

  models.build(tasks, input_shape, arch="ple", levels=2,
               experts=dict(num_shared=2, num_task=1, hidden=(16,), act="relu"),
               gate="softmax",          # or "dselect_k" (k, gamma, gate_conditioning)
               head=dict(hidden=(8,), act="relu"))
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from flax import nnx

from mtl_jax.models.cgc import CGC, EXPERTS
from mtl_jax.models.heads import HEAD
from mtl_jax.tasks import Task
from mtl_jax.validators import positive_int


class PLE(CGC):
  """CGC extraction networks stacked ``levels`` times (default 2).

  Args as :class:`mtl_jax.models.cgc.CGC`, plus ``levels``: the number of
  extraction levels (1 gives CGC).
  """

  def num_levels(self, levels: Any, owner: str) -> int:
    return positive_int(levels, f"{owner}: levels")

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], *,
               rngs: nnx.Rngs, experts: Mapping[str, Any] = EXPERTS,
               gate: str = "softmax", k: int = 2, gamma: float = 1.0,
               gate_conditioning: str = "example", head: Mapping[str, Any] = HEAD,
               levels: int = 2):
    super().__init__(tasks, input_shape, rngs=rngs, experts=experts, gate=gate, k=k,
                     gamma=gamma, gate_conditioning=gate_conditioning, head=head,
                     levels=levels)
