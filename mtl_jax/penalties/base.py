"""Shared helpers of the penalties: stacked leaves as per-task matrices.

A *stacked* weight has a leading task axis ``[K, ...]`` (K towers in canonical
task order, as :mod:`mtl_jax.models.soft_sharing` stores them). Every penalty
is a pure function of one stacked array or of a pytree of them (summed over
leaves), and :func:`stacked_kernels` picks those arrays out of a model's
parameters.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

PyTree = Any


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


def _name(key) -> str:
  return str(getattr(key, "key", getattr(key, "idx", key)))


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
  flat = jax.tree_util.tree_flatten_with_path(params.get("cross", {}))[0]
  kernels = [(path, leaf) for path, leaf in flat if path and _name(path[-1]) == "kernel"]
  if not kernels:
    raise ValueError(
        "Penalties act on stacked per-task tower kernels under params['cross'] "
        "(e.g. arch 'soft_sharing'); this model has none there.")
  for path, leaf in kernels:
    if leaf.ndim < 2 or leaf.shape[0] != num_tasks:
      name = "/".join(_name(k) for k in path)
      raise ValueError(
          f"cross/{name} has shape {tuple(leaf.shape)}; penalties need a leading "
          f"task axis of size {num_tasks}.")
  return [leaf for _, leaf in kernels]
