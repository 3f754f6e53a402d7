"""Multi-gate Mixture-of-Experts (MMoE).

Ma, Zhao, Yi, Chen, Hong, Chi, "Modeling Task Relationships in Multi-task
Learning with Multi-gate Mixture-of-Experts", KDD 2018 (doi:10.1145/3219819.3220007).

``n`` shared experts ``f_1..f_n``; each task ``k`` has its own gate ``g^k`` and
tower ``h^k``:

    y_k = h^k( sum_i g^k(x)_i f_i(x) ),    g^k(x) = softmax(W_k x)

With one expert the gate is identically 1 and MMoE is the shared-bottom model
``y_k = h^k(f(x))``. The experts are ``shared`` (aggregators act on them); each
task's gate and tower are under ``tasks[name]``. Each task sees its own mixture
of experts, so there is no single shared representation and no
``encode``/``decode`` (the representation engine does not apply).

Usage::

  models.build(tasks, input_shape, arch="mmoe",
               experts=dict(num=8, hidden=(16,), act="relu"),  # each expert an MLP
               gate="softmax",            # or "dselect_k" (k, gamma, gate_conditioning)
               head=dict(hidden=(8,), act="relu"))             # the towers

Inputs of any shape are flattened.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
from flax import nnx

from mtl_jax.models.experts import Experts, build_gate, expert_options, gate_options, mix
from mtl_jax.models.heads import HEAD, Head, head_options
from mtl_jax.models.options import frozen
from mtl_jax.models.trunks import flat_size
from mtl_jax.tasks import Task

# The keys of MMoE's ``experts`` option and their defaults.
EXPERTS = frozen(num=8, hidden=(16,), act="relu")


class GatedTower(nnx.Module):
  """One task's gate over the experts and its tower."""

  def __init__(self, gate: nnx.Module, head: Head):
    self.gate = gate
    self.head = head

  def __call__(self, x: jax.Array, expert_outputs: jax.Array) -> jax.Array:
    return self.head(mix(self.gate(x), expert_outputs))


class MMoE(nnx.Module):
  """``shared`` experts, ``tasks[name]`` = gate + tower.

  Args:
    tasks: the tasks, one gate and tower each.
    input_shape: shape of one example (flattened).
    rngs: initialisation keys.
    experts: ``num`` (number of experts, default 8), ``hidden`` (layer widths
      of each expert MLP, default ``(16,)``) and ``act`` (default ``'relu'``).
    gate: ``'softmax'`` (the paper's) or ``'dselect_k'``.
    k: DSelect-k gate: maximum number of selected experts (capped at ``num``).
    gamma: DSelect-k gate: smooth-step width.
    gate_conditioning: DSelect-k gate: ``'example'`` or ``'task'``
      (input-independent selections); see :mod:`mtl_jax.models.dselect_k_gate`.
    head: the towers: ``hidden`` (default ``()``) and ``act`` (default ``'relu'``).
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], *,
               rngs: nnx.Rngs, experts: Mapping[str, Any] = EXPERTS,
               gate: str = "softmax", k: int = 2, gamma: float = 1.0,
               gate_conditioning: str = "example", head: Mapping[str, Any] = HEAD):
    owner = type(self).__name__
    in_features = flat_size(input_shape)
    ex = expert_options(experts, owner, EXPERTS)
    gate_kw = gate_options(owner, gate=gate, k=k, gamma=gamma,
                           gate_conditioning=gate_conditioning)
    head = head_options(head, owner)
    self.shared = Experts(ex["num"], in_features, ex["hidden"], act=ex["act"], rngs=rngs)
    self.tasks = nnx.Dict({t.name: GatedTower(
        build_gate(in_features=in_features, num_experts=ex["num"], rngs=rngs, **gate_kw),
        Head(ex["hidden"][-1], t, tuple(head["hidden"]), act=head["act"], rngs=rngs))
        for t in tasks})

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    del train
    x = x.reshape(x.shape[0], -1)
    experts = self.shared(x)
    return {name: tower(x, experts) for name, tower in self.tasks.items()}
