"""Trace (nuclear) norm of the stacked towers, one ``[K, P]`` matrix per layer."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.penalties.base import on_stacked_kernels


@jax.custom_jvp
def nuclear_norm(m: jax.Array) -> jax.Array:
  """Sum of the singular values of a matrix, with a guarded derivative.

  The derivative is ``<U_r V_r^T, dM>``: ``U_r V_r^T`` (from the SVD, keeping
  only singular values above ``s_max * max(shape) * eps``) is the gradient
  where the norm is differentiable, and the minimum-norm subgradient where it
  is not (zero singular values, the zero matrix). It never divides by
  singular-value gaps, so repeated singular values are harmless.
  """
  return jnp.sum(jnp.linalg.svd(m, compute_uv=False))


@nuclear_norm.defjvp
def _nuclear_norm_jvp(primals, tangents):
  (m,), (dm,) = primals, tangents
  u, s, vh = jnp.linalg.svd(m, full_matrices=False)
  tol = jnp.max(s, initial=0.0) * max(m.shape) * jnp.finfo(m.dtype).eps
  polar = (u * (s > tol).astype(m.dtype)) @ vh
  return jnp.sum(s), jnp.sum(jax.lax.stop_gradient(polar) * dm)


def trace_norm(w: jax.Array) -> jax.Array:
  """Low-rank coupling of the towers: nuclear norm of a stacked layer.

  .. math::
     \\Omega(W) = \\big\\|[\\operatorname{vec} W_1; \\dots;
       \\operatorname{vec} W_K]\\big\\|_* = \\sum_i \\sigma_i(M),

  where ``M`` is the stacked weight reshaped to ``[K, -1]`` (the
  tensor-trace-norm variant of Yang & Hospedales that flattens all non-task
  axes), summed over the layers. Differentiable everywhere through
  :func:`nuclear_norm`'s guarded derivative (finite at zero and repeated
  singular values).

  >>> float(trace_norm(jnp.array([[3.0, 0.0], [0.0, 4.0]])))
  7.0

  References:
    Yang & Hospedales, "Trace Norm Regularised Deep Multi-Task Learning",
    ICLR Workshop 2017, arXiv:1606.04038.
    Argyriou, Evgeniou & Pontil, "Convex Multi-Task Feature Learning",
    Machine Learning 73(3), 2008.
  """
  return nuclear_norm(w.reshape(w.shape[0], -1))


PENALTY = on_stacked_kernels(trace_norm)
