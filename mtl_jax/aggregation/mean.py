"""Equal weighting of the task gradients: ``mean`` and ``sum``.

The baselines every gradient-level method is compared with: the direction is
the gradient of the (mean or summed) total loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.base import Aggregator, EmptyState, from_weights, stateless_init


def _constant(scale_by_num_tasks: bool) -> Aggregator:
  def weights(gramian: jax.Array, state: EmptyState, **extras):
    del extras
    t = gramian.shape[0]
    dtype = jnp.promote_types(gramian.dtype, jnp.float32)
    value = 1.0 / t if scale_by_num_tasks else 1.0
    return jnp.full((t,), value, dtype), state

  return from_weights(stateless_init, weights)


def mean() -> Aggregator:
  """The mean of the task gradients.

  .. math:: d = \\frac{1}{T} \\sum_t g_t, \\qquad w_t = 1 / T.

  Returns:
    A stateless :class:`~mtl_jax.aggregation.base.Aggregator` with ``weights``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from mtl_jax import aggregation
    >>> agg = aggregation.get("mean")
    >>> d, _ = agg.update(jnp.array([[1.0, 0.0], [0.0, 3.0]]), agg.init(2))
    >>> d.tolist()
    [0.5, 1.5]

  References:
    Caruana, "Multitask Learning", Machine Learning 28, 1997 (equal
    weighting of the task losses).
  """
  return _constant(scale_by_num_tasks=True)


def sum_() -> Aggregator:
  """The sum of the task gradients (gradient of the summed loss).

  .. math:: d = \\sum_t g_t, \\qquad w_t = 1.

  Returns:
    A stateless :class:`~mtl_jax.aggregation.base.Aggregator` with ``weights``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from mtl_jax import aggregation
    >>> agg = aggregation.get("sum")
    >>> d, _ = agg.update(jnp.array([[1.0, 0.0], [0.0, 3.0]]), agg.init(2))
    >>> d.tolist()
    [1.0, 3.0]

  References:
    Caruana, "Multitask Learning", Machine Learning 28, 1997.
  """
  return _constant(scale_by_num_tasks=False)
