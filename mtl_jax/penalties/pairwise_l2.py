"""Squared L2 distance summed over every pair of towers."""

from __future__ import annotations

import jax

from mtl_jax.penalties.base import PyTree, acts_on, sum_over_leaves, stacked_kernels
from mtl_jax.penalties.l2_to_mean import _one as _to_mean


def _one(w: jax.Array) -> jax.Array:
  return w.shape[0] * _to_mean(w)


@acts_on(stacked_kernels)
def pairwise_l2(stacked: PyTree) -> jax.Array:
  """Soft sharing by pairwise distances between the task towers.

  .. math::
     \\Omega(W) = \\sum_{i < j} \\|W_i - W_j\\|_F^2
                = K \\sum_k \\|W_k - \\bar W\\|_F^2,

  computed through the identity on the right (``O(K P)`` instead of
  ``O(K^2 P)``), summed over the leaves of ``stacked``. Gradient w.r.t.
  ``W_k``: ``2 \\sum_{j} (W_k - W_j) = 2 K (W_k - \\bar W)``.

  Args:
    stacked: an array ``[K, ...]`` or a pytree of them (leading axis = tasks).

  Returns:
    A scalar.

  Examples:
    >>> import jax.numpy as jnp
    >>> float(pairwise_l2(jnp.array([[1.0, 2.0], [3.0, 4.0]])))
    8.0

  References:
    Duong, Cohn, Bird & Cook, "Low Resource Dependency Parsing: Cross-lingual
    Parameter Sharing in a Neural Network Parser", ACL 2015 (two towers).
  """
  return sum_over_leaves(_one, stacked)
