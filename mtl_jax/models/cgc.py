"""Customized Gate Control (CGC): task-specific and shared experts.

Tang, Liu, Zhao, Gong, "Progressive Layered Extraction (PLE): A Novel
Multi-Task Learning (MTL) Model for Personalized Recommendations", RecSys 2020
(doi:10.1145/3383313.3412236), Section 4.2.

Each task ``k`` owns ``m_k`` experts ``E_k``; ``m_s`` experts ``E_s`` are
shared. Task ``k``'s gate mixes only its own experts and the shared ones:

    y_k = t^k( g^k(x)^T [E_k(x); E_s(x)] ),   g^k(x) = softmax(W_k x)

so task ``k``'s prediction never depends on another task's experts. One CGC
layer is one *extraction network*; :mod:`mtl_jax.models.ple` stacks them, with
a shared gate at inner levels feeding the next level's shared experts.

Groups: shared experts (and PLE's inner shared gates) are ``shared``; each
task's experts, gates and tower are under ``tasks[name]``. There is no single
shared representation (no ``encode``/``decode``). Dense (per-pixel) tasks are
refused when the model is built: the experts are MLPs with a vector output.

Usage::

  models.build(tasks, input_shape, arch="cgc",
               experts=dict(num_shared=2, num_task=1, hidden=(16,), act="relu"),
               gate="softmax",          # or "dselect_k" (k, gamma, gate_conditioning)
               head=dict(hidden=(8,), act="relu"))
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.experts import Experts, build_gate, expert_options, gate_options, mix
from mtl_jax.models.heads import HEAD, Head, head_options, refuse_dense
from mtl_jax.models.options import frozen
from mtl_jax.models.trunks import flat_size
from mtl_jax.tasks import Task

# The keys of the ``experts`` option of CGC and PLE and their defaults.
EXPERTS = frozen(num_shared=2, num_task=1, hidden=(16,), act="relu")


class Level(nnx.Module):
  """One group's part of an extraction level: its experts and (optional) gate."""

  def __init__(self, experts: Experts, gate: Optional[nnx.Module]):
    self.experts = experts
    self.gate = gate


class TaskStack(nnx.Module):
  """One task's levels (experts + gate per level) and its tower."""

  def __init__(self, levels: Sequence[Level], head: Head):
    self.levels = nnx.List(levels)
    self.head = head


def extract(shared: Level, tasks: dict, shared_in: jax.Array,
            task_in: dict) -> tuple[Optional[jax.Array], dict]:
  """One extraction level.

  Args:
    shared: the shared experts and, at inner PLE levels, the shared gate.
    tasks: ``{name: Level}``, each task's experts and gate.
    shared_in: ``[B, D]`` input of the shared experts and gate.
    task_in: ``{name: [B, D]}`` input of each task's experts and gate.

  Returns:
    The shared gate's mixture of all experts (None without a shared gate) and
    ``{name: mixture of the task's own and the shared experts}``.
  """
  shared_out = shared.experts(shared_in)
  own = {name: level.experts(task_in[name]) for name, level in tasks.items()}
  task_out = {name: mix(level.gate(task_in[name]),
                        jnp.concatenate([own[name], shared_out]))
              for name, level in tasks.items()}
  if shared.gate is None:
    return None, task_out
  everything = jnp.concatenate([*(own[n] for n in sorted(own)), shared_out])
  return mix(shared.gate(shared_in), everything), task_out


class CGC(nnx.Module):
  """Task-specific + shared experts with per-task gates.

  :class:`mtl_jax.models.ple.PLE` reuses this class with ``levels`` levels.

  Args:
    tasks: the tasks.
    input_shape: shape of one example (flattened).
    rngs: initialisation keys.
    experts: ``num_shared`` (shared experts per level, default 2),
      ``num_task`` (experts of each task per level, default 1), ``hidden``
      (layer widths of each expert MLP, default ``(16,)``) and ``act``
      (default ``'relu'``).
    gate: ``'softmax'`` (the paper's) or ``'dselect_k'``; every gate (each
      task's, and PLE's inner shared gates) is of this kind.
    k: DSelect-k gates: maximum number of selected experts.
    gamma: DSelect-k gates: smooth-step width.
    gate_conditioning: DSelect-k gates: ``'example'`` or ``'task'``.
    head: the towers: ``hidden`` (default ``()``) and ``act`` (default ``'relu'``).
    levels: ignored: CGC is one extraction level (accepted so that CGC and
      PLE take the same options; :class:`~mtl_jax.models.ple.PLE` reads it).
  """

  def num_levels(self, levels: Any, owner: str) -> int:
    """The number of extraction levels built: 1 (``levels`` is PLE's option)."""
    del levels, owner
    return 1

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], *,
               rngs: nnx.Rngs, experts: Mapping[str, Any] = EXPERTS,
               gate: str = "softmax", k: int = 2, gamma: float = 1.0,
               gate_conditioning: str = "example", head: Mapping[str, Any] = HEAD,
               levels: int = 1):
    owner = type(self).__name__
    refuse_dense(tasks, owner, "its experts are MLPs on the flattened input (a vector "
                 "per example)")
    ex = expert_options(experts, owner, EXPERTS)
    num_shared, num_task, hidden, act = (ex["num_shared"], ex["num_task"], ex["hidden"],
                                         ex["act"])
    gate_kw = gate_options(owner, gate=gate, k=k, gamma=gamma,
                           gate_conditioning=gate_conditioning)
    head = head_options(head, owner)
    levels = self.num_levels(levels, owner)
    names = [t.name for t in tasks]
    shared, per_task = [], {n: [] for n in names}
    width = flat_size(input_shape)
    for level in range(levels):
      inner = level < levels - 1  # Inner levels also mix all experts for the shared path.
      shared.append(Level(
          Experts(num_shared, width, hidden, act=act, rngs=rngs),
          build_gate(in_features=width, num_experts=len(names) * num_task + num_shared,
                     rngs=rngs, **gate_kw) if inner else None))
      for n in names:
        per_task[n].append(Level(
            Experts(num_task, width, hidden, act=act, rngs=rngs),
            build_gate(in_features=width, num_experts=num_task + num_shared, rngs=rngs,
                       **gate_kw)))
      width = hidden[-1]
    self.shared = nnx.Dict({"levels": nnx.List(shared)})
    self.tasks = nnx.Dict({t.name: TaskStack(per_task[t.name], Head(
        width, t, tuple(head["hidden"]), act=head["act"], rngs=rngs)) for t in tasks})

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    del train
    x = x.reshape(x.shape[0], -1)
    shared_in, task_in = x, {name: x for name in self.tasks}
    for i, shared in enumerate(self.shared["levels"]):
      levels = {name: stack.levels[i] for name, stack in self.tasks.items()}
      shared_in, task_in = extract(shared, levels, shared_in, task_in)
    return {name: stack.head(task_in[name]) for name, stack in self.tasks.items()}
