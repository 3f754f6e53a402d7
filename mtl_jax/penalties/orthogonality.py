"""Soft orthogonality between the towers' weight matrices."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.penalties.base import as_matrices, on_stacked_kernels


def orthogonality(w: jax.Array) -> jax.Array:
  """Pushes the tasks' weight matrices towards orthogonal column spaces.

  .. math::
     \\Omega(W) = \\sum_{i < j} \\|W_i^\\top W_j\\|_F^2,

  with ``W_k`` task ``k``'s weight as a ``[inputs, outputs]`` matrix (see
  :func:`~mtl_jax.penalties.base.as_matrices`). Gradient w.r.t. ``W_i``:
  ``2 \\sum_{j \\ne i} W_j W_j^\\top W_i``.

  >>> w = jnp.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 2.0], [3.0, 4.0]]])
  >>> float(orthogonality(w))
  30.0

  References:
    Bousmalis, Trigeorgis, Silberman, Krishnan & Erhan, "Domain Separation
    Networks", NeurIPS 2016, arXiv:1608.06019 (soft subspace orthogonality).
    Liu, Qiu & Huang, "Adversarial Multi-task Learning for Text
    Classification", ACL 2017, arXiv:1704.05742.
  """
  m = as_matrices(w)  # [K, rows, cols]
  cross = jnp.einsum("irc,jrd->ijcd", m, m, precision=jax.lax.Precision.HIGHEST)
  per_pair = jnp.sum(jnp.square(cross), axis=(2, 3))  # [K, K], symmetric
  k = m.shape[0]
  return jnp.sum(jnp.where(jnp.triu(jnp.ones((k, k), bool), 1), per_pair, 0.0))


PENALTY = on_stacked_kernels(orthogonality)
