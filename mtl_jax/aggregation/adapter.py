"""Using aggregators outside the mtl_jax trainer, with jax and optax alone.

:func:`per_task_grads` computes the stacked per-task gradients of any
function returning a ``[T]`` loss vector (one forward pass, all ``T``
backward passes as one vmapped program). :func:`as_optax` turns an
aggregator into an optax gradient transformation that maps those stacked
gradients to one update, so it chains with any optax optimizer::

  tx = optax.chain(as_optax(mtl_jax.aggregation.get("upgrad"), num_tasks=3),
                   optax.adam(1e-3))
  opt_state = tx.init(params)
  losses, grads = per_task_grads(loss_fn, params, batch)   # grads: [T, ...]
  updates, opt_state = tx.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)

Inside ``jax.pmap``, average the stacked gradients over the data axis
(``lax.pmean((losses, grads), axis)``) before ``tx.update``: every device then
aggregates the global Jacobian. Inside ``shard_map``, differentiate the global
losses instead (``per_task_grads(lambda p, *a: lax.pmean(losses_fn(p, *a),
axis), params, ...)``): the gradient w.r.t. replicated parameters is then
already the global Jacobian (JAX inserts the cross-device sum itself).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from mtl_jax.aggregation.base import Aggregator, num_tasks_of
from mtl_jax.validators import positive_int


class AggregatorState(NamedTuple):
  inner: Any          # the aggregator's own state
  count: jax.Array    # int32 [], updates so far (the methods' `step`)


def per_task_grads(losses_fn: Callable[..., jax.Array], params: Any, *args,
                   **kwargs) -> tuple[jax.Array, Any]:
  """Per-task losses ``[T]`` and gradients (every leaf ``[T, ...]``)."""
  losses, vjp = jax.vjp(lambda p: losses_fn(p, *args, **kwargs), params)
  # Multiplying by ones_like(losses) gives the cotangents the losses' type,
  # which shard_map requires when the losses vary over a mesh axis.
  eye = jnp.eye(losses.shape[0], dtype=losses.dtype) * jnp.ones_like(losses)[None, :]
  grads = jax.vmap(lambda c: vjp(c)[0])(eye)
  return losses, grads


def as_optax(aggregator: Aggregator, num_tasks: int, *, seed: int = 0
             ) -> optax.GradientTransformationExtraArgs:
  """An optax transformation: stacked per-task gradients -> one update.

  Args:
    aggregator: any method from :mod:`mtl_jax.aggregation`.
    num_tasks: T, the leading axis of the gradients it will receive.
    seed: seeds the per-step keys of randomised methods (PCGrad, GradDrop).

  Returns:
    A transformation whose ``update(grads, state, params=None, **extra)``
    accepts ``grads`` with a leading task axis and returns an update without
    it (a descent direction in gradient convention, ready for the next
    optax transformation). Extra keyword arguments (e.g. ``losses=``) are
    passed through to the aggregator.
  """
  positive_int(num_tasks, "num_tasks")
  base_key = jax.random.PRNGKey(seed)

  def init(params):
    return AggregatorState(aggregator.init(num_tasks, params), jnp.zeros((), jnp.int32))

  def update(grads, state, params=None, **extra):
    del params
    if num_tasks_of(grads) != num_tasks:
      raise ValueError(f"as_optax was built for {num_tasks} tasks but got gradients "
                       f"with {num_tasks_of(grads)} rows.")
    key = jax.random.fold_in(base_key, state.count)
    direction, inner = aggregator.update(grads, state.inner, step=state.count, key=key,
                                         **extra)
    return direction, AggregatorState(inner, state.count + 1)

  return optax.GradientTransformationExtraArgs(init, update)
