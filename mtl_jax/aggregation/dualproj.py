"""DualProj: the mean gradient projected onto the dual cone of the gradients."""

from __future__ import annotations

from typing import Optional

import jax.numpy as jnp

from mtl_jax.aggregation import _qp
from mtl_jax.aggregation.base import Aggregator, from_weights, stateless_init


def dualproj(
    reg_eps: float = 1e-4,
    norm_eps: float = 1e-30,
    reduction: str = "mean",
    iterations: Optional[int] = None,
    trace_threshold: float = 0.0,
) -> Aggregator:
  r"""DualProj: projection of the averaged gradient onto the dual cone.

  The mean gradient ``J^T u`` (``u = 1/T``) is projected onto the dual cone
  of the task gradients ``C = {v : g_t^T v >= 0 for all t}``; in weights
  (Quinton & Rey, Proposition 1):

  .. math::
    d = \pi_C(J^\top u) = J^\top w, \qquad
    w = \arg\min_{w \ge u} w^\top G w .

  The QP is solved on ``G / tr(G) + reg_eps I`` (scale free, unique
  solution) by :func:`mtl_jax.aggregation._qp.lower_bounded_qp`
  (Lawson–Hanson active set, ``iterations`` fixed steps).

  Properties: ``J d >= 0`` (to ``reg_eps``, exact for ``reg_eps = 0``);
  ``d`` is the mean gradient when the mean already conflicts with no task,
  and the closest point of the cone to it otherwise.

  Args:
    reg_eps: ridge added to the trace-normalised Gramian, ``>= 0``.
    norm_eps: floor of the normalisation scale (mean of ``diag G``), ``> 0``.
    reduction: project the ``"mean"`` (``u = 1/T``, the paper's default) or
      the ``"sum"`` (``u = 1``) of the gradients.
    iterations: active-set steps; ``None`` gives ``2 T + 8``.
    trace_threshold: a Gramian with ``tr(G)`` below it is treated as zero,
      so the weights are the preference vector (the mean): TorchJD's
      behaviour with its ``norm_eps = 1e-4``. The default ``0`` keeps
      projecting at every scale (the problem is scale-free, so 1e-6
      gradients are handled like unit ones).

  Returns:
    An :class:`~mtl_jax.aggregation.base.Aggregator` with ``weights``.

  Examples:
    >>> method = dualproj()
    >>> grads = {"w": jnp.array([[1.0, 0.0], [-2.0, 1.0]])}
    >>> direction, _ = method.update(grads, method.init(2))
    >>> direction["w"]  # (0, 0.5) up to the reg_eps ridge  # doctest: +SKIP
    Array([-0.0006, 0.5], dtype=float32)

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
    lower = jnp.full((t,), 1.0 / t if reduction == "mean" else 1.0, g.dtype)
    return _qp.lower_bounded_qp(g, lower, iterations=iterations), state

  return from_weights(stateless_init, weights)
