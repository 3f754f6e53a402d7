"""The train state: everything a run needs to continue bit-exactly."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.models.partition import params_of


class TrainState(NamedTuple):
  """One pytree holding all mutable training state.

  Attributes:
    step: int32 ``[]``, number of updates taken (skipped ones included).
    params: ``{'shared', 'tasks', 'cross'}`` trainable parameters, float32
      also when the model computes in bfloat16 (``train.compute_dtype``,
      :mod:`mtl_jax.train.precision`).
    rest: non-parameter model state (batch statistics; float32 likewise).
    opt_state: optax state, partitioned like ``params``.
    weighting_state: the loss-weighting method's state.
    aggregation_state: the aggregator's state (``()`` without one).
    key: uint32 ``[2]`` run key; step ``s`` uses ``fold_in(key, s)``.
    agg_weights: ``[T]`` aggregation weights of the last solve (reused between
      solves when ``method.every > 1``).
    gramian: ``[T, T]`` Gramian of the last solve.
    nonfinite_streak: int32 ``[]`` consecutive skipped (non-finite) updates.
    nonfinite_total: int32 ``[]`` skipped updates in the whole run.
  """

  step: jax.Array
  params: dict
  rest: dict
  opt_state: Any
  weighting_state: Any
  aggregation_state: Any
  key: jax.Array
  agg_weights: jax.Array
  gramian: jax.Array
  nonfinite_streak: jax.Array
  nonfinite_total: jax.Array


def init_state(partition, tx, method, *, seed: int) -> TrainState:
  """A fresh state for a partitioned model, as every run starts.

  Call under ``jax.jit`` (with ``out_shardings`` to place it) or
  ``jax.eval_shape`` (shapes first)::

    p = models.partition(models.build(tasks, input_shape, seed=seed, **options))
    state = jax.jit(lambda: init_state(p, tx, method, seed=seed))()

  Args:
    partition: the model's groups (:func:`mtl_jax.models.partition`); one task
      per entry of ``partition.tasks``.
    tx: the optax transformation over ``{'shared', 'tasks', 'cross'}``
      (:func:`mtl_jax.train.optimizer.build`).
    method: weighting, aggregator and engine (:func:`engines.resolve`).
    seed: the run key; step ``s`` uses ``fold_in(key, s)``.
  """
  params = params_of(partition)
  num_tasks = len(partition.tasks)
  agg = method.aggregator
  zero = jnp.zeros((), jnp.int32)
  return TrainState(
      step=zero,
      params=params,
      rest=partition.rest,
      opt_state=tx.init(params),
      weighting_state=method.weighting.init(num_tasks),
      aggregation_state=agg.init(num_tasks, params["shared"]) if agg else (),
      key=jax.random.PRNGKey(seed),
      agg_weights=jnp.ones((num_tasks,), jnp.float32),
      gramian=jnp.zeros((num_tasks, num_tasks), jnp.float32),
      nonfinite_streak=zero,
      nonfinite_total=zero,
  )
