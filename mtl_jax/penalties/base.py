"""The penalty contract and its shared helpers.

A penalty is a :class:`Penalty`: a pure function of some arrays (a pytree,
summed over its leaves) and how those arrays are read from a model's
parameters ``{'shared', 'tasks', 'cross'}`` (:data:`GROUPS`)::

  penalty = penalties.get("l2_to_mean")
  value = penalty.apply(penalty.select(params))

* the soft-sharing penalties act on *stacked* weights, with a leading task
  axis ``[K, ...]`` (K towers in canonical task order, as
  :mod:`mtl_jax.models.soft_sharing` stores them): each is a function of one
  stacked weight, and :func:`on_stacked_kernels` makes it a penalty of every
  kernel that :func:`stacked_kernels` picks out of the parameters;
* the auxiliary regularisers of particular architectures read their own
  leaves by name (``dselect_entropy``: DSelect-k selector logits;
  ``sluice_orthogonality``: the sluice columns' kernels).

A selection function raises ``ValueError`` when the parameters lack what the
penalty needs; its message lists what was found (:func:`describe`). Each
penalty module defines its function of arrays (named after the penalty) and
``PENALTY``, the :class:`Penalty` that :mod:`mtl_jax.penalties` registers.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterator, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from mtl_jax.contracts import PyTree
from mtl_jax.models.partition import GROUPS


class PenaltyApply(Protocol):
  """``apply(arrays, **options) -> scalar``: the penalty of ``arrays`` (an
  array or a pytree of them, summed over its leaves), with the penalty's own
  keyword options (e.g. ``dselect_entropy``'s ``gamma``)."""

  def __call__(self, arrays: PyTree, **options: Any) -> jax.Array:
    ...


class PenaltySelect(Protocol):
  """``select(params) -> arrays``: what the penalty reads from the model
  parameters ``{'shared', 'tasks', 'cross'}``; raises ``ValueError`` (listing
  what was found) when they lack it."""

  def __call__(self, params: dict) -> PyTree:
    ...


class Penalty(NamedTuple):
  """A penalty as pure functions, ``apply(select(params), **options)``.

  Attributes:
    apply: :class:`PenaltyApply`, the penalty as a function of arrays.
    select: :class:`PenaltySelect`, the arrays it reads from the parameters.
    model_options: keyword options of ``apply`` that describe the model
      (e.g. DSelect-k's ``gamma``): ``penalties.build`` takes them from the
      model config when the penalty's entry does not set them.
  """

  apply: PenaltyApply
  select: PenaltySelect
  model_options: tuple[str, ...] = ()


def as_matrices(w: jax.Array) -> jax.Array:
  """``[K, ..., out] -> [K, inputs, out]``: each task's weight as a matrix.

  Rows are input features (all axes between the task axis and the last one
  flattened: for a conv kernel ``[K, h, w, c_in, c_out]`` the rows are the
  ``h * w * c_in`` taps), columns are outputs. ``[K, n]`` becomes ``[K, n, 1]``
  and ``[K]`` becomes ``[K, 1, 1]``.
  """
  if w.ndim == 0:
    raise ValueError("A stacked weight needs a leading task axis; got a scalar.")
  if w.ndim == 1:
    return w.reshape(w.shape[0], 1, 1)
  if w.ndim == 2:
    return w[..., None]
  return w.reshape(w.shape[0], -1, w.shape[-1])


def sum_over_leaves(fn: Callable[[jax.Array], jax.Array], stacked: PyTree) -> jax.Array:
  """``sum_leaf fn(leaf)`` over an array or a pytree of stacked arrays."""
  leaves = jax.tree.leaves(stacked)
  if not leaves:
    return jnp.zeros(())
  return sum(fn(jnp.asarray(leaf)) for leaf in leaves)


def key_name(key) -> str:
  """The string of one pytree path entry (dict key, sequence index, ...)."""
  return str(getattr(key, "key", getattr(key, "idx", key)))


def leaves_with_paths(tree: PyTree) -> Iterator[tuple[tuple[str, ...], jax.Array]]:
  """``(path as strings, leaf)`` for every leaf of ``tree``."""
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    yield tuple(key_name(k) for k in path), leaf


def describe(params: dict, limit: int = 6) -> str:
  """A short listing of the parameter leaves, for error messages.

  Task names are shown as ``<task>`` so every architecture is listed once:
  ``shared: kernels/0, biases/0; tasks: <task>/gate/logits/kernel, ...; cross: (empty)``.
  """
  parts = []
  for group in GROUPS:
    paths = []
    for path, _ in leaves_with_paths(params.get(group, {})):
      name = "/".join(("<task>",) + path[1:] if group == "tasks" else path)
      if name not in paths:
        paths.append(name)
    shown = ", ".join(paths[:limit])
    if len(paths) > limit:
      shown += f", ... ({len(paths)} distinct paths)"
    parts.append(f"{group}: {shown or '(empty)'}")
  return "; ".join(parts)


def stacked_kernels(params: dict) -> list[jax.Array]:
  """The stacked kernel leaves of ``params['cross']`` (soft-sharing towers).

  Args:
    params: ``{'shared', 'tasks', 'cross'}`` model parameters (pure pytree).

  Returns:
    Every leaf of ``params['cross']`` named ``kernel`` (biases and
    normalisation scales are left out); each has a leading axis of size
    ``K = len(params['tasks'])``.

  Raises:
    ValueError: if there is no such kernel (the architecture has no stacked
      towers) or one's leading axis is not the task axis.
  """
  num_tasks = len(params.get("tasks", {}))
  kernels = [(path, leaf) for path, leaf in leaves_with_paths(params.get("cross", {}))
             if path and path[-1] == "kernel"]
  if not kernels:
    raise ValueError(
        "Penalties act on stacked per-task tower kernels under params['cross'] "
        "(e.g. arch 'soft_sharing'); this model has none there. Found "
        f"{describe(params)}.")
  for path, leaf in kernels:
    if leaf.ndim < 2 or leaf.shape[0] != num_tasks:
      raise ValueError(
          f"cross/{'/'.join(path)} has shape {tuple(leaf.shape)}; penalties need a "
          f"leading task axis of size {num_tasks}.")
  return [leaf for _, leaf in kernels]


def on_stacked_kernels(one: Callable[[jax.Array], jax.Array]) -> Penalty:
  """The soft-sharing penalty made of ``one``, a function of one stacked weight.

  Args:
    one: ``one(w) -> scalar`` for a stacked weight ``w [K, ...]`` (leading
      axis = tasks).

  Returns:
    A :class:`Penalty` whose ``apply(stacked)`` is ``sum_leaf one(leaf)``
    over an array ``[K, ...]`` or a pytree of them, and whose ``select`` is
    :func:`stacked_kernels`: the penalty of a model is ``one`` summed over
    the stacked kernels of its towers.
  """
  return Penalty(apply=functools.partial(sum_over_leaves, one), select=stacked_kernels)
