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
shared representation (no ``encode``/``decode``).

Config (``config.model``)::

  arch="cgc",
  experts=dict(num_shared=2, num_task=1, hidden=(16,), act="relu"),
  gate="softmax",          # or "dselect_k" (k, gamma)
  head=dict(hidden=(8,), act="relu"),
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.experts import Experts, build_gate, flat_size, mix, positive_int, widths
from mtl_jax.models.heads import Head
from mtl_jax.tasks import Task


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


def expert_counts(config) -> tuple[int, int, tuple[int, ...], str]:
  """``num_shared``, ``num_task``, ``hidden`` and ``act`` of ``config.experts``."""
  ec = config.get("experts", None) or {}
  return (positive_int(ec.get("num_shared", 2), "model.experts.num_shared"),
          positive_int(ec.get("num_task", 1), "model.experts.num_task"),
          widths(ec.get("hidden", (16,)), "model.experts.hidden"),
          ec.get("act", "relu"))


class CGC(nnx.Module):
  """Task-specific + shared experts with per-task gates (``num_levels`` = 1).

  :class:`mtl_jax.models.ple.PLE` reuses this class with more levels.

  Args:
    tasks: the tasks.
    input_shape: shape of one example (flattened).
    config: ``config.model`` (see the module docstring).
    rngs: initialisation keys.
  """

  def num_levels(self, config) -> int:
    del config
    return 1

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], config, *,
               rngs: nnx.Rngs):
    num_shared, num_task, hidden, act = expert_counts(config)
    levels = self.num_levels(config)
    names = [t.name for t in tasks]
    shared, per_task = [], {n: [] for n in names}
    width = flat_size(input_shape)
    for level in range(levels):
      inner = level < levels - 1  # Inner levels also mix all experts for the shared path.
      shared.append(Level(
          Experts(num_shared, width, hidden, act=act, rngs=rngs),
          build_gate(config, width, len(names) * num_task + num_shared, rngs=rngs)
          if inner else None))
      for n in names:
        per_task[n].append(Level(Experts(num_task, width, hidden, act=act, rngs=rngs),
                                 build_gate(config, width, num_task + num_shared, rngs=rngs)))
      width = hidden[-1]
    self.shared = nnx.Dict({"levels": nnx.List(shared)})
    head = config.get("head", None) or {}
    self.tasks = nnx.Dict({t.name: TaskStack(per_task[t.name], Head(
        width, t, tuple(head.get("hidden", ())), act=head.get("act", "relu"),
        rngs=rngs)) for t in tasks})

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    del train
    x = x.reshape(x.shape[0], -1)
    shared_in, task_in = x, {name: x for name in self.tasks}
    for i, shared in enumerate(self.shared["levels"]):
      levels = {name: stack.levels[i] for name, stack in self.tasks.items()}
      shared_in, task_in = extract(shared, levels, shared_in, task_in)
    return {name: stack.head(task_in[name]) for name, stack in self.tasks.items()}
