"""IMTL-G: the direction with equal projections on all unit task gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.base import Aggregator, EmptyState, from_weights, stateless_init
from mtl_jax.aggregation.gramians import TINY, inverse_norms, normalize_gramian
from mtl_jax.validators import hyperparameter, in_range


def impartial_weights(gramian: jax.Array, rcond=None) -> jax.Array:
  """IMTL-G's ``alpha [T]`` from the Gramian, by a least-squares solve.

  Writes the paper's conditions as linear equations in ``alpha``. With
  ``u_t = g_t / ||g_t||`` and ``V = G N^{-1}`` (``V_st = g_s . u_t``), the
  projections of ``d = alpha J`` are ``d . u_t = (alpha^T V)_t``; requiring
  them equal over the *active* (non-zero) tasks, ``alpha_t = 0`` for zero
  gradients and ``sum_t alpha_t = 1`` gives ``alpha^T A = b^T`` with
  ``A = [V H, diag(1 - m), 1]`` (``m`` the active mask, ``H`` the centring
  matrix over active tasks), solved as ``alpha = pinv(A)^T b``: the unique
  solution when the gradients are linearly independent (then it equals the
  paper's ``g_1 U^T (D U^T)^{-1}``), the min-norm one otherwise (duplicated
  or opposite gradients get equal weights), never NaN. If every gradient is
  zero all tasks count as active (uniform weights).

  Args:
    gramian: ``[T, T]`` Gramian.
    rcond: relative cut-off of :func:`jax.numpy.linalg.pinv` (``None``: its
      default, ~10 max(shape) machine epsilon).

  Returns:
    ``alpha [T]`` summing to one.
  """
  g = gramian.astype(jnp.promote_types(gramian.dtype, jnp.float32))
  g, _ = normalize_gramian(g)
  t = g.shape[0]
  diag = jnp.diag(g)
  active = diag > TINY
  active = jnp.where(jnp.any(active), active, True)
  m = active.astype(g.dtype)
  inv_norm = inverse_norms(g, jnp.sqrt(TINY))
  v = g * inv_norm[None, :]
  centring = jnp.diag(m) - jnp.outer(m, m) / jnp.sum(m)
  a = jnp.concatenate(
      [v @ centring, jnp.diag(1.0 - m), jnp.ones((t, 1), g.dtype)], axis=1)
  b = jnp.zeros((2 * t + 1,), g.dtype).at[-1].set(1.0)
  return b @ jnp.linalg.pinv(a, rtol=rcond)


def imtl_g(rcond=None) -> Aggregator:
  """Impartial MTL, gradient part: equal projections on all unit gradients.

  IMTL-G finds ``d = sum_t alpha_t g_t`` with ``sum_t alpha_t = 1`` whose
  projections onto the unit task gradients ``u_t = g_t / ||g_t||`` are all
  equal, ``d . u_1 = d . u_t``; the paper's closed form is

  .. math::
     \\alpha_{2:T} = g_1 U^\\top (D U^\\top)^{-1}, \\quad
     \\alpha_1 = 1 - \\textstyle\\sum_{t \\ge 2} \\alpha_t,

  with rows ``D_t = g_1 - g_t`` and ``U_t = u_1 - u_t``. All these inner
  products come from the Gramian; :func:`impartial_weights` solves the same
  conditions symmetrically in the tasks with a pseudo-inverse, so zero,
  duplicated and opposite gradients stay finite. The problem is scale-free
  and solved on the normalised Gramian. (IMTL's loss part, IMTL-L, is a
  loss-weighting method: ``mtl_jax.weighting``'s ``imtl_l``.)

  Args:
    rcond: relative singular-value cut-off of the pseudo-inverse (``None``:
      JAX's default).

  Returns:
    A stateless :class:`~mtl_jax.aggregation.base.Aggregator` with
    ``weights``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from mtl_jax import aggregation
    >>> agg = aggregation.get("imtl_g")
    >>> grads = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    >>> w, _ = agg.weights(aggregation.gramian(grads), agg.init(2))
    >>> [round(x, 4) for x in w.tolist()]  # d = (2/3, 2/3)
    [0.6667, 0.3333]

  References:
    Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, "Towards Impartial
    Multi-task Learning", ICLR 2021 (openreview.net/forum?id=IMPnRXEWpvr).
  """
  if rcond is not None:
    in_range(rcond, hyperparameter("rcond"), 0.0, 1.0, closed="left")

  def weights(gramian: jax.Array, state: EmptyState, **extras):
    del extras
    return impartial_weights(gramian, rcond), state

  return from_weights(stateless_init, weights)
