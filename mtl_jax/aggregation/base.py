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
Jacobian and refuse the other engines. What a Gramian gives (task norms,
cosines, normalisation) is in :mod:`mtl_jax.aggregation.gramians`;
:func:`gramian` and :func:`normalize_gramian` are also importable from here.

The fields of :class:`Aggregator` are typed with the protocols
:class:`AggregatorInit`, :class:`AggregatorUpdate` and
:class:`AggregatorWeights`, as optax types ``GradientTransformation``'s.

Extras are keyword-only; every function must ignore the ones it does not use:

* ``step``: int32 scalar global step; ``key``: this step's PRNG key;
* ``losses``: ``[T]`` per-task losses (FairGrad variants, MoCo, ...).

Every solver runs inside the jitted graph with a fixed iteration count (no
scipy, cvxpy or host round trips), and every method must return finite values
for zero, tiny (1e-30), huge (1e15), duplicated and opposite gradients and for
a single task.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Protocol

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.gramians import gramian, normalize_gramian
from mtl_jax.contracts import EmptyState, PyTree, State


class AggregatorInit(Protocol):
  """``init(num_tasks, params=None) -> state``.

  ``num_tasks`` is ``T``, the size of the task axis of the gradients that
  ``update`` will receive; ``params`` is a pytree shaped like one task's
  gradient, for methods with per-parameter state (GradDrop's, MoCo's);
  the others ignore it.
  """

  def __call__(self, num_tasks: int, params: Optional[PyTree] = None) -> State:
    ...


class AggregatorUpdate(Protocol):
  """``update(grads, state, **extras) -> (direction, state)``.

  ``grads``: a pytree whose leaves all have a leading task axis ``[T, ...]``;
  ``direction``: the same pytree without the task axis, a descent direction
  in gradient convention. Extras are keyword-only (``step``, ``key``,
  ``losses``); an update must accept and ignore the ones it does not use.
  """

  def __call__(self, grads: PyTree, state: State, **extras: Any
               ) -> tuple[PyTree, State]:
    ...


class AggregatorWeights(Protocol):
  """``weights(gramian, state, **extras) -> (w [T], state)``.

  The task weights of a method whose direction is ``sum_t w_t g_t``, from
  the ``[T, T]`` Gramian alone. Extras as for :class:`AggregatorUpdate`.
  """

  def __call__(self, gramian: jax.Array, state: State, **extras: Any
               ) -> tuple[jax.Array, State]:
    ...


class Aggregator(NamedTuple):
  """A gradient-aggregation method as pure functions.

  Attributes:
    init: :class:`AggregatorInit`, ``init(num_tasks, params=None) -> state``.
    update: :class:`AggregatorUpdate`,
      ``update(grads, state, **extras) -> (direction, state)``.
    weights: :class:`AggregatorWeights`,
      ``weights(gramian, state, **extras) -> (weights [T], state)`` for
      methods whose direction is ``sum_t w_t g_t``; ``None`` otherwise.
  """

  init: AggregatorInit
  update: AggregatorUpdate
  weights: Optional[AggregatorWeights] = None


def stateless_init(num_tasks: int, params: Optional[PyTree] = None) -> EmptyState:
  """The ``init`` of a method without state."""
  del num_tasks, params
  return EmptyState()


def task_buffer(num_tasks: int, params: Optional[PyTree], *, method: str,
                keeps: str) -> PyTree:
  """Zeros ``[T, *p]`` (at least float32) for each leaf of ``params``: the
  per-task state of a method that tracks every task's gradient vector.

  Raises ValueError (``"<method> <keeps>: call init(num_tasks, params) ..."``)
  when ``params`` is None.
  """
  if params is None:
    raise ValueError(
        f"{method} {keeps}: call init(num_tasks, params) with params shaped "
        "like one task's gradient.")
  return jax.tree.map(
      lambda p: jnp.zeros((num_tasks,) + jnp.shape(p),
                          jnp.promote_types(jnp.result_type(p), jnp.float32)),
      params)


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


def all_finite(*trees: Any) -> jax.Array:
  """Scalar bool: every element of every leaf of ``trees`` is finite."""
  leaves = [leaf for tree in trees for leaf in jax.tree.leaves(tree)
            if leaf is not None]
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves])
                 ) if leaves else jnp.array(True)


def keep_if(ok: jax.Array, new_state: State, old_state: State) -> State:
  """``new_state`` where ``ok`` else ``old_state``, leaf by leaf.

  The non-finite policy of the stateful aggregators: a step whose inputs
  (gradients, and ``losses`` where used) are not all finite returns a
  non-finite direction (so ``optax.apply_if_finite`` and the trainer skip
  it) and leaves the state, step count included, unchanged, so one bad step
  never poisons the later ones.
  """
  return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new_state, old_state)


def from_weights(init: AggregatorInit, weights: AggregatorWeights) -> Aggregator:
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


__all__ = ["Aggregator", "AggregatorInit", "AggregatorUpdate", "AggregatorWeights",
           "EmptyState", "PyTree", "combine", "flatten", "from_weights", "gramian",
           "normalize_gramian", "num_tasks_of", "stateless_init"]
