"""Splitting a multi-task NNX model into its parameter groups.

Every multi-task model in :mod:`mtl_jax.models` declares its parameters by
where it stores them (top-level attributes):

* ``shared``: parameters every task uses (the trunk, MMoE experts, ...). Their
  per-task gradients are what weighting and aggregation methods act on.
* ``tasks``: an ``nnx.Dict`` keyed by task name; each entry holds the
  parameters only that task uses (its head, its tower, its gate).
* ``cross``: optional, parameters that couple tasks without being a trunk
  (cross-stitch units, sluice mixing weights). They are trained with the
  gradient of the weighted total loss, like task parameters.

Everything that is not an ``nnx.Param`` (batch statistics, counters) is
``rest``. :func:`partition` raises if any parameter sits elsewhere, so a new
architecture cannot silently leave a parameter out of the optimizer.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
from flax import nnx

GROUPS = ("shared", "tasks", "cross")


class Partition(NamedTuple):
  """The groups of a model, as pure (nested ``dict``) pytrees.

  Attributes:
    graphdef: the static structure; ``merge(partition)`` rebuilds the module.
    shared: parameters used by all tasks (``{}`` for independent models).
    tasks: ``{task_name: params}`` for every task.
    cross: cross-task coupling parameters (``{}`` when there are none).
    rest: non-parameter state such as batch statistics.
  """

  graphdef: Any
  shared: dict
  tasks: dict
  cross: dict
  rest: dict


def _under(group: str):
  return lambda path, _: len(path) > 0 and path[0] == group


def partition(model: nnx.Module) -> Partition:
  """Splits ``model`` into graph definition, shared, task, cross and rest.

  Raises:
    ValueError: if a parameter belongs to no group (the message lists its
      path), or if ``model.tasks`` is missing.
  """
  if not isinstance(getattr(model, "tasks", None), (nnx.Dict, dict)):
    raise ValueError(
        f"{type(model).__name__} has no `tasks` attribute (an nnx.Dict keyed "
        "by task name); every multi-task model must declare its task "
        "parameters there.")
  filters = [nnx.All(nnx.Param, _under(g)) for g in GROUPS]
  graphdef, shared, tasks, cross, loose, rest = nnx.split(
      model, *filters, nnx.Param, ...)
  loose = nnx.to_pure_dict(loose)
  if jax.tree.leaves(loose):
    paths = [
        "/".join(str(getattr(k, "key", k)) for k in path)
        for path, _ in jax.tree_util.tree_flatten_with_path(loose)[0]
    ]
    raise ValueError(
        f"{type(model).__name__} has parameters outside the shared/tasks/cross "
        f"groups: {paths}. Move them under one of {GROUPS}.")
  shared, tasks, cross = (
      nnx.to_pure_dict(s).get(g, {}) for s, g in zip((shared, tasks, cross), GROUPS))
  return Partition(graphdef, shared, tasks, cross, nnx.to_pure_dict(rest))


def merge(graphdef: Any, params: dict, rest: dict) -> nnx.Module:
  """Rebuilds the module from ``params = {'shared', 'tasks', 'cross'}``.

  Use inside pure functions: ``model = merge(graphdef, params, rest)``.
  """
  groups = [{g: params[g]} for g in GROUPS if params.get(g)]
  return nnx.merge(graphdef, *groups, rest)


def params_of(p: Partition) -> dict:
  """The trainable parameters of a partition as one pytree."""
  return {"shared": p.shared, "tasks": p.tasks, "cross": p.cross}


def task_names(p: Partition) -> tuple[str, ...]:
  """Task names in canonical (sorted) order, the order of weight vectors."""
  return tuple(sorted(p.tasks))
