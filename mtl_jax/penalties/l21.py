"""L2,1 group sparsity: input features shared (or dropped) by all tasks."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.penalties.base import as_matrices, on_stacked_kernels


def l21(w: jax.Array) -> jax.Array:
  """Joint feature selection: an L2 norm per input feature, summed (L1).

  .. math::
     \\Omega(W) = \\sum_{r} \\sqrt{\\sum_{k} \\sum_{c} W_{k,r,c}^2},

  where ``r`` runs over input features (rows of
  :func:`~mtl_jax.penalties.base.as_matrices`; for a conv kernel, every
  ``(h, w, c_in)`` tap) and the norm is across tasks ``k`` and outputs ``c``.
  A feature is thus used by all tasks or driven to zero for all. At an
  all-zero group the minimum-norm subgradient 0 is returned.

  >>> float(l21(jnp.array([[3.0, 0.0], [4.0, 0.0]])))
  5.0

  References:
    Argyriou, Evgeniou & Pontil, "Multi-Task Feature Learning", NeurIPS 2006.
    Obozinski, Taskar & Jordan, "Joint covariate selection and joint subspace
    selection for multiple classification problems", Statistics and
    Computing 20(2), 2010.
    Liu, Ji & Ye, "Multi-Task Feature Learning via Efficient l2,1-Norm
    Minimization", UAI 2009, arXiv:1205.2631.
  """
  sq = jnp.sum(jnp.square(as_matrices(w)), axis=(0, 2))  # [inputs]
  positive = sq > 0
  # Double `where`: the norm's gradient at an all-zero group is 0, not NaN.
  return jnp.sum(jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0))


PENALTY = on_stacked_kernels(l21)
