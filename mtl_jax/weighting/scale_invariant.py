"""Scale-invariant weighting: minimise the sum of log losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.validators import above, hyperparameter
from mtl_jax.weighting import base


def scale_invariant(eps: float = base.LOSS_EPS) -> base.Weighting:
  """Scale-invariant (SI) weighting: the sum of the log losses.

  The objective ``sum_t log(L_t)`` does not change (up to a constant) when a
  task's loss is multiplied by any positive factor, so no task dominates
  because of its units. This method returns its gradient-equivalent weights::

    total = sum_t log(L_t + eps)
    d total / d L_t = 1 / (L_t + eps)   =>   w_t = 1 / (L_t + eps),

  so ``sum_t w_t grad L_t`` equals the gradient of ``total``. ``eps`` keeps a
  loss of exactly 0 finite (weight ``1 / eps``).

  Args:
    eps: added to each loss before dividing; must be > 0.

  Returns:
    A stateless :class:`~mtl_jax.weighting.base.Weighting`.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = scale_invariant()
    >>> state = method.init(2)
    >>> weights, state = method.update(jnp.array([0.5, 4.0]), state)
    >>> [round(w, 4) for w in weights.tolist()]
    [2.0, 0.25]

  References:
    Used as the "SI" baseline in A. Navon, A. Shamsian, I. Achituve, H. Maron,
    K. Kawaguchi, G. Chechik, E. Fetaya. "Multi-Task Learning as a Bargaining
    Game". ICML 2022. arXiv:2202.01017.
  """
  above(eps, hyperparameter("eps"), 0)

  def weights(losses: jax.Array, **extras) -> jax.Array:
    del extras
    return jnp.exp(-base.safe_log(losses, eps))

  return base.stateless(weights)
