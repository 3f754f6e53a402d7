"""ConFIG: the conflict-free direction with equal cosine to every task."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.base import Aggregator, from_weights, stateless_init
from mtl_jax.aggregation.gramians import normalize_gramian
from mtl_jax.validators import above, hyperparameter, in_range

_HIGHEST = jax.lax.Precision.HIGHEST


def config_method(
    rtol: float = 1e-6,
    norm_eps: float = 1e-30,
) -> Aggregator:
  r"""ConFIG: conflict-free inverse gradients (registry name ``"config"``).

  With unit gradients ``U = [g_1/||g_1||, ..., g_T/||g_T||]^T`` the
  direction makes the same angle with every task gradient:

  .. math::
    g_u = U^{+} \mathbf{1}, \qquad
    \hat g_u = g_u / \|g_u\|, \qquad
    d = \Big(\sum_t g_t^\top \hat g_u\Big)\, \hat g_u ,

  (``U^+`` the pseudo-inverse, so ``U g_u = 1`` when the gradients are
  linearly independent: every cosine equals ``1 / ||g_u||``). It is
  Gramian-expressible: with ``D = diag(||g_t||)`` and the cosine matrix
  ``C = D^{-1} G D^{-1}``, ``g_u = J^T v`` with ``v = D^{-1} C^{+} 1``, and

  .. math::
    w = v \, \frac{\mathbf{1}^\top G v}{v^\top G v},\qquad d = J^\top w .

  The weights are scale-invariant, so they are computed on the normalised
  Gramian. ``C^+`` comes from an eigendecomposition with eigenvalues below
  ``rtol`` times the largest treated as zero (duplicated gradients). Zero
  gradients have no direction and are left out of ``U``; when no direction
  is consistent with the gradients (``||U^T C^+ 1||^2 < 1e-6``, e.g. two
  opposite gradients, where the reference returns NaN) the update is zero.
  The momentum variant (M-ConFIG) is not implemented.

  Args:
    rtol: relative eigenvalue cutoff of the pseudo-inverse, in ``[0, 1)``.
      The trade-off: exactly duplicated or opposite float32 gradients give
      cosine-matrix eigenvalues of up to ~4 float32 eps (``5e-7``) times the
      largest instead of zero, which must be cut (else the direction is set
      by rounding); but the cut also zeroes the update where two gradients
      are within ``~2 sqrt(rtol)`` rad of anti-parallel, so the method stops
      short of a Pareto set by a distance ``~sqrt(rtol)`` (on the 2-task toy
      problem: up to 0.17 with ``1e-5``, 0.05 with ``1e-6``). The default
      ``1e-6`` (~8 eps) keeps a factor 2 over the rounding noise.
    norm_eps: floor of the normalisation scale, ``> 0``.

  Returns:
    An :class:`~mtl_jax.aggregation.base.Aggregator` with ``weights``.

  Examples:
    >>> method = config_method()
    >>> grads = {"w": jnp.array([[1.0, 0.0], [0.0, 3.0]])}
    >>> direction, _ = method.update(grads, method.init(2))
    >>> direction["w"]  # equal cosine: along (1, 1), length 4 / sqrt(2)
    ... # doctest: +SKIP
    Array([2., 2.], dtype=float32)

  References:
    Q. Liu, M. Chu & N. Thuerey, "ConFIG: Towards Conflict-free Training of
    Physics Informed Neural Networks", ICLR 2025, arXiv:2408.11104
    (reference implementation: the ``conflictfree`` package).
  """
  in_range(rtol, hyperparameter("rtol"), 0.0, 1.0, closed="left")
  above(norm_eps, hyperparameter("norm_eps"), 0)

  def weights(gramian, state, **extras):
    del extras
    g, _ = normalize_gramian(
        gramian.astype(jnp.promote_types(gramian.dtype, jnp.float32)),
        norm_eps)
    t = g.shape[0]
    sq = jnp.diag(g)
    valid = sq > jnp.finfo(g.dtype).tiny
    inv_norm = jnp.where(valid, jax.lax.rsqrt(jnp.where(valid, sq, 1.0)), 0.0)
    cos = jnp.clip(g * inv_norm[:, None] * inv_norm[None, :], -1.0, 1.0)
    evals, evecs = jnp.linalg.eigh(cos)
    cutoff = rtol * jnp.maximum(jnp.max(evals), 0.0)
    keep = evals > jnp.maximum(cutoff, jnp.finfo(g.dtype).tiny)
    inv_evals = jnp.where(keep, 1.0 / jnp.where(keep, evals, 1.0), 0.0)
    ones = jnp.ones((t,), g.dtype)
    k = jnp.dot(evecs, inv_evals * jnp.dot(evecs.T, ones, precision=_HIGHEST),
                precision=_HIGHEST)           # C^+ 1
    v = inv_norm * k                           # g_u = J^T v
    gv = jnp.dot(g, v, precision=_HIGHEST)
    unit_sq = jnp.dot(v, gv, precision=_HIGHEST)   # ||g_u||^2 = 1^T C^+ 1
    consistent = unit_sq > 1e-6
    w = jnp.where(consistent,
                  v * jnp.sum(gv) / jnp.where(consistent, unit_sq, 1.0), 0.0)
    return w, state

  return from_weights(stateless_init, weights)
