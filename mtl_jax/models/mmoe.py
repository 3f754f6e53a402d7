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

Dense tasks: with ``experts=dict(trunk=...)`` every expert is a copy of that
trunk (e.g. ``trunk=dict(kind="segnet")`` or ``"dilated_resnet"``), the ``num``
copies stacked and run as one batched op (as the soft-sharing towers), and
each task's gate mixes the experts' feature maps with per-example weights
from the flattened input, as LibMTL's MMoE on NYUv2 does (its experts are
copies of the encoder, its gates linear maps of the flattened image); dense
tasks then get dense heads (:mod:`mtl_jax.models.heads`). Without a trunk
(MLP experts, a vector per example) dense tasks are refused when the model
is built.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
from flax import nnx

from mtl_jax.models.experts import Experts, build_gate, expert_options, gate_options, mix
from mtl_jax.models.heads import HEAD, head_options, make_head, refuse_dense
from mtl_jax.models.options import frozen
from mtl_jax.models.soft_sharing import run_stacked, stacked_trunks
from mtl_jax.models.trunks import flat_size, trunk_options
from mtl_jax.tasks import Task

# The keys of MMoE's ``experts`` option and their defaults (``trunk``: None
# for MLP experts, or the options of a trunk each expert copies).
EXPERTS = frozen(num=8, hidden=(16,), act="relu", trunk=None)


class GatedTower(nnx.Module):
  """One task's gate over the experts and its tower."""

  def __init__(self, gate: nnx.Module, head: nnx.Module):
    self.gate = gate
    self.head = head

  def __call__(self, x: jax.Array, expert_outputs: jax.Array, *,
               train: bool = False) -> jax.Array:
    return self.head(mix(self.gate(x), expert_outputs), train=train)


class MMoE(nnx.Module):
  """``shared`` experts, ``tasks[name]`` = gate + tower.

  Args:
    tasks: the tasks, one gate and tower each.
    input_shape: shape of one example (flattened).
    rngs: initialisation keys.
    experts: ``num`` (number of experts, default 8), ``hidden`` (layer widths
      of each expert MLP, default ``(16,)``) and ``act`` (default ``'relu'``);
      or ``trunk``: the options of a trunk
      (:func:`~mtl_jax.models.trunks.build_trunk`) that every expert copies
      instead of an MLP (``hidden`` and ``act`` are then unused).
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
    self.trunk_experts = ex["trunk"] is not None
    if self.trunk_experts:
      trunk = trunk_options(ex["trunk"], f"{owner}: experts")
      self.shared = stacked_trunks(trunk, input_shape, ex["num"], rngs)
      features = self.shared
    else:
      refuse_dense(tasks, owner, "its experts are MLPs on the flattened input (a vector "
                   "per example; set experts.trunk for feature-map experts)")
      self.shared = Experts(ex["num"], in_features, ex["hidden"], act=ex["act"], rngs=rngs)
      features = ex["hidden"][-1]
    self.tasks = nnx.Dict({t.name: GatedTower(
        build_gate(in_features=in_features, num_experts=ex["num"], rngs=rngs, **gate_kw),
        make_head(t, features, rngs=rngs, input_shape=input_shape, owner=owner, **head))
        for t in tasks})

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    flat = x.reshape(x.shape[0], -1)
    if self.trunk_experts:
      experts = run_stacked(self.shared, x, train)  # [E, B, ...]
    else:
      experts = self.shared(flat)
    return {name: tower(flat, experts, train=train) for name, tower in self.tasks.items()}
