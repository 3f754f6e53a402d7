"""The Gramian ``G = J J^T`` of the per-task gradients and what it gives.

One home for what every package reads off a Gramian: the aggregation methods
and their solvers, the weighting methods that list ``"gramian"`` in their
``needs`` (GradNorm, DB-MTL, ExcessMTL) and the train logger
(``grad_norm/<task>``, ``cos/<a>/<b>``)::

  G = gramian(grads)            # [T, T] from stacked per-task gradients
  task_norms(G)                 # ||g_t||
  cosines(G)                    # cos(g_i, g_j), 0 next to a zero gradient
  G_hat, s = normalize_gramian(G)   # unit mean diagonal, for scale-free solvers

The functions of a Gramian take a numpy array (and then compute in numpy, at
its precision, on the host) or a JAX array (traceable, inside ``jit``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any

TINY = 1e-20
"""Below this (on a Gramian normalised to unit mean diagonal) a squared norm
counts as zero: the gradient is 1e-10 times smaller than a typical one."""


def _namespace(x):
  """numpy for numpy inputs, jax.numpy for everything else (tracers included)."""
  return np if isinstance(x, (np.ndarray, np.generic)) else jnp


def gramian(grads: PyTree) -> jax.Array:
  """``G = J J^T`` of stacked per-task gradients, accumulated over leaves.

  Every leaf of ``grads`` has a leading task axis ``[T, ...]``. Computed in
  float32 (or the leaves' wider dtype) at highest precision.
  """
  def leaf_gram(g):
    g = g.reshape(g.shape[0], -1)
    g = g.astype(jnp.promote_types(g.dtype, jnp.float32))
    return jnp.dot(g, g.T, precision=jax.lax.Precision.HIGHEST)
  return sum(leaf_gram(g) for g in jax.tree.leaves(grads))


def normalize_gramian(gramian_: jax.Array, eps: float = 1e-12
                      ) -> tuple[jax.Array, jax.Array]:
  """Scales a Gramian to unit trace-mean to make solvers scale-free.

  Returns ``(G / s, s)`` with ``s = max(mean(diag(G)), eps)``; weights solved
  on ``G / s`` are the same as on ``G`` for scale-invariant problems. Use it
  so 1e-30 and 1e15 gradients behave like unit ones.
  """
  xp = _namespace(gramian_)
  scale = xp.maximum(xp.mean(xp.diagonal(gramian_)), eps)
  return gramian_ / scale, scale


def safe_sqrt(x: jax.Array) -> jax.Array:
  """``sqrt(max(x, 0))``: norms from a Gramian diagonal with round-off."""
  xp = _namespace(x)
  return xp.sqrt(xp.maximum(x, 0.0))


def safe_inverse(x: jax.Array, tiny: float = TINY) -> jax.Array:
  """``1 / x`` where ``x > tiny``, else ``0`` (no inf, no NaN gradient)."""
  xp = _namespace(x)
  ok = x > tiny
  return xp.where(ok, 1.0 / xp.where(ok, x, 1.0), 0.0)


def task_norms(gramian_: jax.Array) -> jax.Array:
  """``||g_t|| = sqrt(G_tt)`` for every task, clamped at 0 against round-off."""
  return safe_sqrt(_namespace(gramian_).diagonal(gramian_))


def inverse_norms(gramian_: jax.Array, tiny: float = 0.0) -> jax.Array:
  """``1 / ||g_t||`` for every task, ``0`` where ``||g_t|| <= tiny``."""
  return safe_inverse(task_norms(gramian_), tiny)


def cosines(gramian_: jax.Array, tiny: float = 0.0) -> jax.Array:
  """Pairwise cosines ``G_ij / (||g_i|| ||g_j||)``: the Gramian of the unit
  gradients, ``D^-1 G D^-1`` with ``D = diag(||g_t||)``.

  A gradient of norm ``<= tiny`` gets a zero row and column instead of NaN.
  """
  inv = inverse_norms(gramian_, tiny)
  return inv[:, None] * gramian_ * inv[None, :]


__all__ = ["TINY", "cosines", "gramian", "inverse_norms", "normalize_gramian",
           "safe_inverse", "safe_sqrt", "task_norms"]
