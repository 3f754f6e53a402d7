"""Random loss weighting (RLW)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.validators import above, choice, hyperparameter
from mtl_jax.weighting import base

_DISTRIBUTIONS = ("normal", "dirichlet")


def rlw(distribution: str = "normal", concentration: float = 1.0,
        weights_sum: str = "num_tasks") -> base.Weighting:
  """Random loss weighting: fresh random weights at every step.

  At each update the weights are drawn from ``key`` (the trainer passes
  ``fold_in(seed_key, step)``, so they are reproducible and survive a
  restart), independently of the losses::

    normal:     z ~ N(0, I_K),              w = K softmax(z)
    dirichlet:  p ~ Dir(concentration 1_K), w = K p

  Both give weights that sum to ``K`` (the scale of equal weighting) and have
  mean 1 for every task. The normal/softmax variant is the paper's default.
  The paper's weights (and LibMTL's ``softmax(randn(K))``) sum to 1, i.e.
  ``K`` times smaller: ``weights_sum="one"`` gives them (use a ``K`` times
  larger learning rate to match the default's scale).

  Args:
    distribution: ``"normal"`` or ``"dirichlet"``.
    concentration: Dirichlet concentration (> 0); larger values give weights
      closer to 1. Ignored for ``"normal"``.
    weights_sum: ``"num_tasks"`` (default) or ``"one"`` (the paper's).

  Returns:
    A stateless :class:`~mtl_jax.weighting.base.Weighting`; ``update``
    requires ``key``.

  Raises:
    ValueError: for an unknown ``distribution`` or ``concentration <= 0``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> method = rlw()
    >>> state = method.init(3)
    >>> weights, state = method.update(
    ...     jnp.ones(3), state, key=jax.random.key(0))
    >>> round(float(weights.sum()), 4)
    3.0

  References:
    B. Lin, F. Ye, Y. Zhang, I. W. Tsang. "Reasonable Effectiveness of Random
    Weighting: A Litmus Test for Multi-Task Learning". TMLR 2022.
    arXiv:2111.10603.
  """
  choice(distribution, hyperparameter("distribution"), _DISTRIBUTIONS)
  above(concentration, hyperparameter("concentration"), 0)
  choice(weights_sum, hyperparameter("weights_sum"), ("num_tasks", "one"))

  def draw(losses: jax.Array, *, key: jax.Array | None = None,
           **extras) -> jax.Array:
    del extras
    if key is None:
      raise ValueError("rlw needs a PRNG key: call update(..., key=key).")
    num_tasks = losses.shape[0]
    total = num_tasks if weights_sum == "num_tasks" else 1
    if distribution == "normal":
      z = jax.random.normal(key, (num_tasks,), losses.dtype)
      return total * jax.nn.softmax(z)
    alpha = jnp.full((num_tasks,), concentration, losses.dtype)
    return total * jax.random.dirichlet(key, alpha, dtype=losses.dtype)

  return base.stateless(draw)
