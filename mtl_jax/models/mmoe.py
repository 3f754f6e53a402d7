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

Config (``config.model``)::

  arch="mmoe",
  experts=dict(num=8, hidden=(16,), act="relu"),  # each expert an MLP
  gate="softmax",                                 # or "dselect_k" (k, gamma,
                                                  #   gate_conditioning)
  head=dict(hidden=(8,), act="relu"),             # the towers

Inputs of any shape are flattened.
"""

from __future__ import annotations

from typing import Sequence

import jax
from flax import nnx

from mtl_jax.models.experts import Experts, build_gate, flat_size, mix, positive_int, widths
from mtl_jax.models.heads import Head
from mtl_jax.tasks import Task


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
    config: ``config.model`` (see the module docstring).
    rngs: initialisation keys.
  """

  gate_kind: str | None = None  # Subclasses may fix the gate.

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], config, *,
               rngs: nnx.Rngs):
    in_features = flat_size(input_shape)
    ec = config.get("experts", None) or {}
    num = positive_int(ec.get("num", 8), "model.experts.num")
    hidden = widths(ec.get("hidden", (16,)), "model.experts.hidden")
    self.shared = Experts(num, in_features, hidden, act=ec.get("act", "relu"),
                          rngs=rngs)
    head = config.get("head", None) or {}
    self.tasks = nnx.Dict({t.name: GatedTower(
        build_gate(config, in_features, num, rngs=rngs, kind=self._gate(config)),
        Head(hidden[-1], t, tuple(head.get("hidden", ())), act=head.get("act", "relu"),
             rngs=rngs)) for t in tasks})

  def _gate(self, config) -> str | None:
    if self.gate_kind and config.get("gate", self.gate_kind) != self.gate_kind:
      raise ValueError(f"model.gate must be {self.gate_kind!r} (or unset) for "
                       f"{type(self).__name__}, got {config.get('gate')!r}.")
    return self.gate_kind

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    del train
    x = x.reshape(x.shape[0], -1)
    experts = self.shared(x)
    return {name: tower(x, experts) for name, tower in self.tasks.items()}
