"""Static, user-given task weights."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from mtl_jax.validators import hyperparameter, positive_int, vector
from mtl_jax.weighting import base


def fixed(weights: Sequence[float] | jax.Array) -> base.Weighting:
  """Fixed (static) weighting: a constant vector chosen by the user.

  The trainer minimises ``total = sum_t c_t L_t`` with the given ``c``; the
  weights never change. Equal weighting is the special case ``c = 1``.

  Args:
    weights: ``[T]`` non-negative, finite task weights, one per task in the
      canonical (sorted task name) order.

  Returns:
    A stateless :class:`~mtl_jax.weighting.base.Weighting`; ``init(T)`` raises
    ``ValueError`` (quoting both lengths) unless ``len(weights) == T``.

  Raises:
    ValueError: if ``weights`` is not a finite 1-D vector with entries >= 0.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = fixed([1.0, 0.5])
    >>> state = method.init(2)
    >>> weights, state = method.update(jnp.array([3.0, 4.0]), state)
    >>> weights.tolist()
    [1.0, 0.5]

  References:
    The usual hand-tuned baseline, e.g. the grid-searched weights of A. Kendall,
    Y. Gal, R. Cipolla. "Multi-Task Learning Using Uncertainty to Weigh Losses
    for Scene Geometry and Semantics". CVPR 2018. arXiv:1705.07115.
  """
  values = vector(weights, hyperparameter("weights"), nonnegative=True)

  def init(num_tasks: int) -> base.EmptyState:
    positive_int(num_tasks, "num_tasks")
    base.check_weights_length(values, num_tasks)
    return base.EmptyState()

  def update(losses: jax.Array, state: base.EmptyState, **extras):
    del extras
    losses = base.as_losses(losses)
    base.check_weights_length(values, losses.shape[0])
    return jnp.asarray(values, losses.dtype), state

  return base.Weighting(init, update)
