"""Shared helpers of the penalties: what a penalty reads, stacked leaves as matrices.

Every penalty is a pure function of some arrays (a pytree, summed over its
leaves) and declares with :func:`acts_on` how those arrays are read from a
model's parameters ``{'shared', 'tasks', 'cross'}``:

* the soft-sharing penalties act on *stacked* weights, with a leading task
  axis ``[K, ...]`` (K towers in canonical task order, as
  :mod:`mtl_jax.models.soft_sharing` stores them); :func:`stacked_kernels`
  picks those out of the parameters;
* the auxiliary regularisers of particular architectures read their own
  leaves by name (``dselect_entropy``: DSelect-k selector logits;
  ``sluice_orthogonality``: the sluice columns' kernels).

A selection function raises ``ValueError`` when the parameters lack what the
penalty needs; its message lists what was found (:func:`describe`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp

PyTree = Any
GROUPS = ("shared", "tasks", "cross")


def acts_on(select: Callable[[dict], PyTree], *, model_options: tuple[str, ...] = ()):
  """Declares the parameters a penalty reads: ``penalty(select(params))``.

  Args:
    select: maps the model parameters ``{'shared', 'tasks', 'cross'}`` to the
      penalty's first argument; raises ``ValueError`` if they lack it.
    model_options: keyword options of the penalty that describe the model
      (e.g. DSelect-k's ``gamma``): ``penalties.build`` takes them from the
      model config when the penalty's entry does not set them.

  Returns:
    A decorator that stores ``select`` and ``model_options`` as attributes of
    the penalty (itself unchanged: still a function of arrays).
  """
  def declare(fn: Callable) -> Callable:
    fn.select = select
    fn.model_options = tuple(model_options)
    return fn
  return declare


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
