"""Equal weighting: the plain sum of the task losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.weighting import base


def equal() -> base.Weighting:
  """Equal weighting (EW), also called linear or unitary scalarisation.

  Every task gets weight 1, so the trainer minimises the plain sum::

    total = sum_t L_t,    w_t = 1.

  It is the baseline every other method is compared with, and a strong one
  (Kurin et al., 2022; Xin et al., 2022).

  Returns:
    A stateless :class:`~mtl_jax.weighting.base.Weighting`.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = equal()
    >>> state = method.init(3)
    >>> weights, state = method.update(jnp.array([0.5, 2.0, 9.0]), state)
    >>> weights.tolist()
    [1.0, 1.0, 1.0]

  References:
    V. Kurin, A. De Palma, I. Kostrikov, S. Whiteson, M. P. Kumar. "In Defense
    of the Unitary Scalarization for Deep Multi-Task Learning". NeurIPS 2022.
    arXiv:2201.04122.
  """

  def weights(losses: jax.Array, **extras) -> jax.Array:
    del extras
    return jnp.ones_like(losses)

  return base.stateless(weights)
