"""Soft parameter sharing: one tower per task, coupled only by penalties.

Duong, Cohn, Bird & Cook, "Low Resource Dependency Parsing: Cross-lingual
Parameter Sharing in a Neural Network Parser", ACL 2015 (L2 distance between
the towers' parameters); Yang & Hospedales, "Trace Norm Regularised Deep
Multi-Task Learning", ICLR Workshop 2017, arXiv:1606.04038 (trace norm of the
stacked towers). The architecture itself shares nothing; the coupling is a
penalty on the stacked tower weights (:mod:`mtl_jax.penalties`), which the
trainer adds to the loss; penalties are not an option of the architecture.

Parameter layout:

* ``cross['towers']``: stacked per-task towers; leading axis = tasks in
  canonical (sorted-name) order. Each tower is the trunk given by ``trunk``
  (MLP or CNN); the K towers run as one batched (``vmap``-ed) computation.
  They get the gradient of the weighted loss sum, so slice ``k`` receives
  exactly task ``k``'s (weighted) gradient.
* ``tasks[name]``: that task's :class:`~mtl_jax.models.heads.Head`. Heads are
  not stacked, because output widths differ between tasks (classes vs
  regression dims); padding them would put phantom weights under the
  penalties.
* ``shared``: empty. There is no single shared representation, hence no
  ``encode``/``decode`` (the representation engine does not apply).

Dense tasks: with a tower that gives a feature map (``trunk.kind`` 'segnet'
or 'dilated_resnet') each task's head is a dense head on its tower's map
(:mod:`mtl_jax.models.heads`); the penalties act on the stacked towers as for
any trunk.

Usage::

  models.build(tasks, input_shape, arch="soft_sharing",
               trunk=dict(kind="mlp", hidden=(64,), act="relu"),   # each tower
               head=dict(hidden=(), act="relu"))
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.heads import HEAD, build_heads, head_options
from mtl_jax.models.trunks import build_trunk, trunk_options
from mtl_jax.tasks import Task


def stacked_trunks(trunk: Mapping[str, Any], input_shape: Sequence[int], num_tasks: int,
                    rngs: nnx.Rngs) -> nnx.Module:
  """``num_tasks`` independently initialised trunks, stacked on axis 0.

  The trunks are built one after the other (exactly as separate networks
  would be) and their states stacked leaf by leaf; the result is one module
  whose every parameter and batch statistic has a leading task axis.
  """
  towers = [build_trunk(input_shape, rngs=rngs, **trunk) for _ in range(num_tasks)]
  graphdef, _ = nnx.split(towers[0])
  states = [nnx.state(t) for t in towers]
  return nnx.merge(graphdef, jax.tree.map(lambda *xs: jnp.stack(xs), *states))


def run_stacked(towers: nnx.Module, x: jax.Array, train: bool) -> jax.Array:
  """All stacked trunks on the same inputs: ``[B, ...] -> [K, B, features]`` (or
  ``[K, B, h, w, C]`` for feature-map towers)."""
  @nnx.vmap(in_axes=(0, None), out_axes=0)
  def run(tower, inputs):
    return tower(inputs, train=train)
  return run(towers, x)


class SoftSharing(nnx.Module):
  """Stacked per-task towers under ``cross``, per-task heads under ``tasks``.

  Args:
    tasks: the tasks, one tower and head each.
    input_shape: shape of one example.
    rngs: initialisation keys.
    trunk: the options of every tower (each is one
      :func:`~mtl_jax.models.trunks.build_trunk` trunk).
    head: the options of the heads, as for hard sharing.
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], *,
               rngs: nnx.Rngs, trunk: Mapping[str, Any],
               head: Mapping[str, Any] = HEAD):
    trunk = trunk_options(trunk, "SoftSharing")
    head = head_options(head, "SoftSharing")
    tasks = sorted(tasks, key=lambda t: t.name)
    self.names = tuple(t.name for t in tasks)
    towers = stacked_trunks(trunk, input_shape, len(tasks), rngs)
    self.cross = nnx.Dict(towers=towers)
    self.tasks = build_heads(tasks, towers, rngs=rngs, input_shape=input_shape,
                             owner="SoftSharing", **head)

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    z = run_stacked(self.cross["towers"], x, train)
    return {name: self.tasks[name](z[k], train=train)
            for k, name in enumerate(self.names)}


def task_slice(params_or_model, task_name: str) -> dict:
  """One task's tower and head parameters, by task name.

  Args:
    params_or_model: a :class:`SoftSharing` module, or its parameters
      ``{'shared', 'tasks', 'cross'}`` as a pure pytree (e.g. ``state.params``).
    task_name: the task.

  Returns:
    ``{'tower': ..., 'head': ...}``: the tower is slice ``k`` of every leaf of
    ``cross['towers']`` (``k`` = the task's index in sorted order), with the
    structure of a single trunk's parameters; the head is ``tasks[task_name]``.

  Raises:
    ValueError: if ``task_name`` is not one of the model's tasks.
  """
  params = params_or_model
  if isinstance(params_or_model, nnx.Module):
    params = nnx.to_pure_dict(nnx.state(params_or_model, nnx.Param))
  names = sorted(params["tasks"])
  if task_name not in names:
    raise ValueError(f"Unknown task {task_name!r}; tasks: {names}.")
  k = names.index(task_name)
  return {"tower": jax.tree.map(lambda a: a[k], params["cross"]["towers"]),
          "head": params["tasks"][task_name]}
