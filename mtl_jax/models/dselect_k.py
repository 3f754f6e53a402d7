"""DSelect-k MoE: MMoE whose per-task gates select at most k experts.

Hazimeh, Zhao, Chowdhery, Sathiamoorthy, Chen, Mazumder, Hong, Chi,
"DSelect-k: Differentiable Selection in the Mixture of Experts with
Applications to Multi-Task Learning", NeurIPS 2021, arXiv:2106.03760.

The paper's multi-task model is MMoE (:mod:`mtl_jax.models.mmoe`) with a
DSelect-k gate per task; the gate itself (the smooth-step, the binary codes,
the example- and task-conditioned variants) is in
:mod:`mtl_jax.models.dselect_k_gate`, and any MoE model here takes
``gate='dselect_k'`` as well. The paper's entropy regulariser is the penalty
``dselect_entropy`` (:mod:`mtl_jax.penalties.dselect_entropy`).

Usage::

  models.build(tasks, input_shape, arch="dselect_k",
               experts=dict(num=8, hidden=(16,), act="relu"),
               k=2, gamma=1.0, gate_conditioning="example",
               head=dict(hidden=(8,), act="relu"))
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from flax import nnx

# The gate's pieces, re-exported: the DSelect-k reference lives here too.
from mtl_jax.models.dselect_k_gate import (  # noqa: F401
    CONDITIONINGS, DSelectKGate, code_matrices, code_weights, smooth_step)
from mtl_jax.models.heads import HEAD
from mtl_jax.models.mmoe import EXPERTS, MMoE
from mtl_jax.tasks import Task


class DSelectKMoE(MMoE):
  """MMoE whose per-task gates are DSelect-k gates (Hazimeh et al., 2021).

  Args as :class:`mtl_jax.models.mmoe.MMoE`; ``gate`` must be ``'dselect_k'``
  (the default), and ``k``, ``gamma`` and ``gate_conditioning`` set up the
  gates.
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], *,
               rngs: nnx.Rngs, experts: Mapping[str, Any] = EXPERTS,
               gate: str = "dselect_k", k: int = 2, gamma: float = 1.0,
               gate_conditioning: str = "example", head: Mapping[str, Any] = HEAD):
    if gate != "dselect_k":
      raise ValueError(f"{type(self).__name__}: gate must be 'dselect_k' (the default), "
                       f"got {gate!r}.")
    super().__init__(tasks, input_shape, rngs=rngs, experts=experts, gate=gate, k=k,
                     gamma=gamma, gate_conditioning=gate_conditioning, head=head)
