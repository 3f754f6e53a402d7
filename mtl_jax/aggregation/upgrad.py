"""UPGrad: average of the task gradients projected onto their dual cone."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from mtl_jax.aggregation import _qp
from mtl_jax.aggregation.base import Aggregator, from_weights, stateless_init


def upgrad(
    reg_eps: float = 1e-4,
    norm_eps: float = 1e-30,
    reduction: str = "mean",
    iterations: Optional[int] = None,
    trace_threshold: float = 0.0,
) -> Aggregator:
  r"""Unconflicting Projection of Gradients (UPGrad).

  Each task gradient ``g_i`` is projected onto the dual cone of all the task
  gradients, ``C = {v : g_t^T v >= 0 for all t}``, and the projections are
  averaged (or summed):

  .. math::
    d = \frac{1}{T} \sum_i \pi_C(g_i), \qquad
    \pi_C(g_i) = J^\top w^{(i)}, \quad
    w^{(i)} = \arg\min_{w \ge e_i} w^\top G w,

  the second form being the dual of the projection (Quinton & Rey,
  Proposition 1), so the weights are ``w = mean_i w^{(i)}`` and only the
  Gramian ``G = J J^T`` is needed. As in the reference implementation the
  ``T`` box-constrained QPs are solved on ``G / tr(G) + reg_eps I`` (scale
  free; the ridge makes the solution unique), here by
  :func:`mtl_jax.aggregation._qp.lower_bounded_qp` (Lawson–Hanson active
  set, ``iterations`` fixed steps, vectorised over ``i``).

  Properties: ``J d >= 0`` (no task's loss increases to first order; exact
  for ``reg_eps = 0``, ``>= -reg_eps * ||w|| tr(G)`` in general), and when
  no two gradients conflict (``G >= 0`` entry-wise) every ``g_i`` is already
  in the cone and ``d`` is the mean gradient.

  Args:
    reg_eps: ridge added to the trace-normalised Gramian, ``>= 0``.
    norm_eps: floor of the normalisation scale (mean of ``diag G``), ``> 0``;
      a Gramian below it is treated as (almost) zero and gives the mean.
    reduction: ``"mean"`` (the paper's default preference vector ``1/T``)
      or ``"sum"`` of the projected gradients.
    iterations: active-set steps per QP; ``None`` gives ``2 T + 8``.
    trace_threshold: a Gramian with ``tr(G)`` below it is treated as zero,
      so the weights are the preference vector (the mean): TorchJD's
      behaviour with its ``norm_eps = 1e-4``. The default ``0`` keeps
      projecting at every scale (the problem is scale-free, so 1e-6
      gradients are handled like unit ones).

  Returns:
    An :class:`~mtl_jax.aggregation.base.Aggregator` with ``weights``.

  Examples:
    >>> method = upgrad()
    >>> grads = {"w": jnp.array([[1.0, 0.0], [-2.0, 1.0]])}
    >>> direction, _ = method.update(grads, method.init(2))
    >>> direction["w"]  # (0.1, 0.7) up to the reg_eps ridge  # doctest: +SKIP
    Array([0.0994, 0.69998], dtype=float32)

  References:
    Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization",
    arXiv:2406.16232, 2024 (reference implementation: TorchJD).
  """
  _qp.check_dual_cone_options(reg_eps, norm_eps, reduction, iterations,
                              trace_threshold)

  def weights(gramian, state, **extras):
    del extras
    t = gramian.shape[0]
    g = _qp.dual_cone_matrix(gramian, reg_eps, norm_eps, trace_threshold)
    eye = jnp.eye(t, dtype=g.dtype)
    per_task = jax.vmap(
        lambda u: _qp.lower_bounded_qp(g, u, iterations=iterations))(eye)
    w = jnp.sum(per_task, axis=0)
    if reduction == "mean":
      w = w / t
    return w, state

  return from_weights(stateless_init, weights)
