"""Geometric loss strategy (GLS): minimise the geometric mean of the losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.validators import above, hyperparameter
from mtl_jax.weighting import base


def gls(eps: float = base.LOSS_EPS) -> base.Weighting:
  """Geometric loss strategy: the geometric mean of the task losses.

  GLS minimises ``total = (prod_t L_t)^(1/K)`` for ``K`` tasks. Like the sum of
  log losses it is invariant to the scale of each loss (up to a factor), but it
  keeps the magnitude of a loss. This method returns its gradient-equivalent
  weights::

    total = exp(mean_t log(L_t + eps))
    d total / d L_t = total / (K (L_t + eps)) => w_t = total / (K (L_t + eps))

  so ``sum_t w_t grad L_t`` equals the gradient of ``total``. They are computed
  in log space, ``w_t = exp(mean_j log(L_j + eps) - log(L_t + eps)) / K``, so
  losses of 0, 1e-30 or 1e15 all give finite weights.

  Args:
    eps: added to each loss inside the log; must be > 0.

  Returns:
    A stateless :class:`~mtl_jax.weighting.base.Weighting`.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = gls()
    >>> state = method.init(2)
    >>> # total = sqrt(1 * 4) = 2, w = 2 / (2 * [1, 4])
    >>> weights, state = method.update(jnp.array([1.0, 4.0]), state)
    >>> [round(w, 4) for w in weights.tolist()]
    [1.0, 0.25]

  References:
    S. Chennupati, G. Sistu, S. Yogamani, S. A. Rawashdeh. "MultiNet++:
    Multi-Stream Feature Aggregation and Geometric Loss Strategy for
    Multi-Task Learning". CVPR Workshops 2019. arXiv:1904.08492.
  """
  above(eps, hyperparameter("eps"), 0)

  def weights(losses: jax.Array, **extras) -> jax.Array:
    del extras
    log_losses = base.safe_log(losses, eps)
    return jnp.exp(jnp.mean(log_losses) - log_losses) / losses.shape[0]

  return base.stateless(weights)
