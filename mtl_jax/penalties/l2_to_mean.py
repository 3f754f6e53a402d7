"""Squared L2 distance of every tower to the mean tower."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.penalties.base import on_stacked_kernels


def l2_to_mean(w: jax.Array) -> jax.Array:
  """Mean-regularised multi-task learning: towers pulled to their mean.

  .. math::
     \\Omega(W) = \\sum_{k=1}^K \\|W_k - \\bar W\\|_F^2,
     \\qquad \\bar W = \\frac1K \\sum_k W_k.

  Its gradient w.r.t. ``W_k`` is ``2 (W_k - \\bar W)``; it is zero iff all
  towers are equal.

  >>> float(l2_to_mean(jnp.array([[1.0, 2.0], [3.0, 4.0]])))
  4.0

  References:
    Evgeniou & Pontil, "Regularized Multi-Task Learning", KDD 2004.
    Duong, Cohn, Bird & Cook, "Low Resource Dependency Parsing: Cross-lingual
    Parameter Sharing in a Neural Network Parser", ACL 2015.
  """
  w = w.reshape(w.shape[0], -1)
  return jnp.sum(jnp.square(w - jnp.mean(w, axis=0, keepdims=True)))


PENALTY = on_stacked_kernels(l2_to_mean)
