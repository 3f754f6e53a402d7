"""The contract every gradient-aggregation method follows.

An aggregator turns the stacked per-task gradients of the shared parameters
(a pytree whose leaves all have a leading task axis ``[T, ...]``, the rows of
the Jacobian ``J``) into one update direction with the same structure minus
the task axis. Like ``optax.GradientTransformation``, a factory returns a
:class:`Aggregator` of pure, jittable functions::

  method = mtl_jax.aggregation.get("upgrad")
  state = method.init(num_tasks, params)
  direction, state = method.update(grads, state, step=step, key=key)

The returned direction is a *descent* direction in gradient convention (the
optimizer subtracts it, as it would a plain gradient).

Many methods only need the Gramian ``G = J J^T`` and return
``direction = sum_t w_t g_t``. They also provide ``weights(gramian, state, ...)
-> (w [T], state)``; :func:`from_weights` derives ``update`` from it. The
trainer uses ``weights`` when present: it then never materialises ``J`` beyond
the Gramian (Gramian engine), can use the Gramian of the gradients w.r.t. the
shared representation instead (representation engine, MGDA-UB), and logs the
weights. Methods without ``weights`` (GradDrop, MoCo, ...) need the full
Jacobian and refuse the other engines.

Extras are keyword-only; every function must ignore the ones it does not use:

* ``step``: int32 scalar global step; ``key``: this step's PRNG key;
* ``losses``: ``[T]`` per-task losses (FairGrad variants, MoCo, ...).

Every solver runs inside the jitted graph with a fixed iteration count (no
scipy, cvxpy or host round trips), and every method must return finite values
for zero, tiny (1e-30), huge (1e15), duplicated and opposite gradients and for
a single task.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

PyTree = Any


class Aggregator(NamedTuple):
  """A gradient-aggregation method as pure functions.

  Attributes:
    init: ``init(num_tasks, params=None) -> state``; ``params`` is a pytree
      shaped like one task's gradient, for methods with per-parameter state.
    update: ``update(grads, state, **extras) -> (direction, state)``.
    weights: ``weights(gramian, state, **extras) -> (weights [T], state)`` for
      methods whose direction is ``sum_t w_t g_t``; ``None`` otherwise.
  """

  init: Callable[..., Any]
  update: Callable[..., tuple[PyTree, Any]]
  weights: Optional[Callable[..., tuple[jax.Array, Any]]] = None


class EmptyState(NamedTuple):
  """State of a stateless method."""


def stateless_init(num_tasks: int, params=None) -> EmptyState:
  """The ``init`` of a method without state."""
  del num_tasks, params
  return EmptyState()


def num_tasks_of(grads: PyTree) -> int:
  """The size of the leading task axis shared by every leaf of ``grads``."""
  leaves = jax.tree.leaves(grads)
  if not leaves:
    raise ValueError("grads is an empty pytree: nothing to aggregate.")
  sizes = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
  if len(sizes) != 1 or None in sizes:
    shapes = [leaf.shape for leaf in leaves]
    raise ValueError(
        "Every leaf of grads needs the same leading task axis; got leaf "
        f"shapes {shapes}.")
  return sizes.pop()


def gramian(grads: PyTree) -> jax.Array:
  """``G = J J^T`` of stacked per-task gradients, accumulated over leaves.

  Computed in float32 (or the leaves' wider dtype) at highest precision.
  """
  def leaf_gram(g):
    g = g.reshape(g.shape[0], -1)
    g = g.astype(jnp.promote_types(g.dtype, jnp.float32))
    return jnp.dot(g, g.T, precision=jax.lax.Precision.HIGHEST)
  return sum(leaf_gram(g) for g in jax.tree.leaves(grads))


def combine(weights: jax.Array, grads: PyTree) -> PyTree:
  """``sum_t weights[t] * grads[t]`` for every leaf."""
  def leaf(g):
    w = weights.astype(jnp.promote_types(g.dtype, jnp.float32))
    out = jnp.tensordot(w, g.astype(w.dtype), axes=1,
                        precision=jax.lax.Precision.HIGHEST)
    return out.astype(g.dtype)
  return jax.tree.map(leaf, grads)


def flatten(grads: PyTree) -> tuple[jax.Array, Callable[[jax.Array], PyTree]]:
  """Stacks the per-task gradients into a ``[T, P]`` matrix.

  Returns the matrix and a function mapping a ``[P]`` vector back to the
  pytree structure of one task's gradient.
  """
  leaves, treedef = jax.tree.flatten(grads)
  t = leaves[0].shape[0]
  shapes = [leaf.shape[1:] for leaf in leaves]
  sizes = [int(jnp.size(leaf)) // t for leaf in leaves]
  matrix = jnp.concatenate([leaf.reshape(t, -1) for leaf in leaves], axis=1)

  def unflatten(vector: jax.Array) -> PyTree:
    parts, start = [], 0
    for shape, size, leaf in zip(shapes, sizes, leaves):
      parts.append(vector[start:start + size].reshape(shape).astype(leaf.dtype))
      start += size
    return jax.tree.unflatten(treedef, parts)

  return matrix, unflatten


def from_weights(
    init: Callable[..., Any],
    weights: Callable[..., tuple[jax.Array, Any]],
) -> Aggregator:
  """Builds an aggregator whose direction is ``sum_t w_t g_t``.

  Args:
    init: ``init(num_tasks, params=None) -> state``.
    weights: ``weights(gramian, state, **extras) -> (w [T], state)``.

  Returns:
    An :class:`Aggregator` whose ``update`` computes the Gramian of ``grads``,
    calls ``weights`` and combines the task gradients with them.
  """
  def update(grads, state, **extras):
    w, state = weights(gramian(grads), state, **extras)
    return combine(w, grads), state

  return Aggregator(init=init, update=update, weights=weights)


def normalize_gramian(gramian_: jax.Array, eps: float = 1e-12) -> tuple[jax.Array, jax.Array]:
  """Scales a Gramian to unit trace-mean to make solvers scale-free.

  Returns ``(G / s, s)`` with ``s = max(mean(diag(G)), eps)``; weights solved
  on ``G / s`` are the same as on ``G`` for scale-invariant problems. Use it
  so 1e-30 and 1e15 gradients behave like unit ones.
  """
  scale = jnp.maximum(jnp.mean(jnp.diag(gramian_)), eps)
  return gramian_ / scale, scale
