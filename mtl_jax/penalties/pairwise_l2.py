"""Squared L2 distance summed over every pair of towers."""

from __future__ import annotations

import jax

from mtl_jax.penalties.base import on_stacked_kernels
from mtl_jax.penalties.l2_to_mean import l2_to_mean


def pairwise_l2(w: jax.Array) -> jax.Array:
  """Soft sharing by pairwise distances between the task towers.

  .. math::
     \\Omega(W) = \\sum_{i < j} \\|W_i - W_j\\|_F^2
                = K \\sum_k \\|W_k - \\bar W\\|_F^2,

  computed through the identity on the right (``O(K P)`` instead of
  ``O(K^2 P)``). Gradient w.r.t. ``W_k``:
  ``2 \\sum_{j} (W_k - W_j) = 2 K (W_k - \\bar W)``.

  >>> float(pairwise_l2(jax.numpy.array([[1.0, 2.0], [3.0, 4.0]])))
  8.0

  References:
    Duong, Cohn, Bird & Cook, "Low Resource Dependency Parsing: Cross-lingual
    Parameter Sharing in a Neural Network Parser", ACL 2015 (two towers).
  """
  return w.shape[0] * l2_to_mean(w)


PENALTY = on_stacked_kernels(pairwise_l2)
