"""FairGrad: alpha-fair allocation of the update among the tasks."""

from __future__ import annotations

import jax.numpy as jnp

from mtl_jax.aggregation import _qp
from mtl_jax.aggregation.base import Aggregator, from_weights, stateless_init
from mtl_jax.aggregation.gramians import normalize_gramian
from mtl_jax.validators import (above, at_least, boolean, hyperparameter,
                                 positive_int)


def fairgrad(
    alpha: float = 1.0,
    max_norm: float = 1.0,
    reg_eps: float = 1e-8,
    norm_eps: float = 1e-20,
    iterations: int = 25,
    scale_by_num_tasks: bool = False,
) -> Aggregator:
  r"""FairGrad: fair resource allocation in multi-task learning.

  Treats the per-task improvements ``u_t = g_t^T d`` as utilities and picks
  the update maximising the alpha-fair utility
  ``sum_t u_t^{1 - alpha} / (1 - alpha)`` (``log`` for ``alpha = 1``) on a
  ball. With ``d = J^T w`` its optimality conditions are

  .. math::
    G w = w^{-1/\alpha} \quad (\text{element-wise}), \qquad w > 0,

  so ``g_t^T d = w_t^{-1/alpha} > 0`` for every task. ``alpha = 1`` is
  proportional fairness (the Nash-MTL bargaining equations ``G w = 1/w``);
  ``alpha -> infinity`` approaches max-min fairness (MGDA-like); small
  ``alpha`` approaches the plain sum of gradients.

  The reference solves the equations with ``scipy.optimize.least_squares``;
  here they are the stationarity conditions of a strictly convex function,
  minimised by damped Newton with ``iterations`` fixed steps
  (:func:`mtl_jax.aggregation._qp.power_allocation`) on the scale-normalised
  ``G / s + reg_eps I`` (``s`` the mean of ``diag G``), and mapped back
  exactly: the solution for ``G`` is ``s^{-alpha / (1 + alpha)}`` times the
  one for ``G / s``. The ridge keeps the problem bounded for singular ``G``
  (opposite or zero gradients). Gradients that are anti-parallel or
  duplicated to float32 precision (as on a Pareto set) give a Gramian that is
  indefinite by rounding: the solver works on its positive semi-definite part
  with a ridge of at least one float32 ulp of its largest eigenvalue and
  never lets its objective increase, so the weights stay bounded by the
  ridge, and the clip uses a norm estimate that rounding cannot make zero or
  negative (:func:`mtl_jax.aggregation._qp.clip_weights`).

  ``max_norm > 0`` rescales the weights so that ``||J^T w|| <= max_norm``,
  like the reference's ``clip_grad_norm_`` on the shared parameters. (The
  reference also multiplies the update by ``T`` before clipping, "to match
  the sum loss"; that factor is not applied by default, so the weights
  solve the equations above; ``scale_by_num_tasks=True`` applies it before
  the clip, as the reference does.)

  Args:
    alpha: fairness exponent, ``> 0``.
    max_norm: clip the update norm to this value, ``>= 0``; ``0`` disables
      clipping. The reference default is ``1.0``.
    scale_by_num_tasks: multiply the weights by ``T`` before the clip (the
      reference code); default ``False``.
    reg_eps: ridge added to the normalised Gramian, ``> 0``; values below
      float32 resolution (``1.2e-7`` times its largest eigenvalue) are
      raised to it. It only matters for tasks whose gradient is ~1e-4 times
      smaller than the others, or for (nearly) opposite gradients.
    norm_eps: floor of the normalisation scale, ``> 0``.
    iterations: Newton steps, ``>= 1``.

  Returns:
    An :class:`~mtl_jax.aggregation.base.Aggregator` with ``weights``.

  Examples:
    >>> method = fairgrad(alpha=2.0, max_norm=0.0)
    >>> grads = {"w": jnp.array([[1.0, 0.0], [0.0, 2.0]])}
    >>> direction, _ = method.update(grads, method.init(2))
    >>> # orthogonal gradients: w_t = ||g_t||^{-2 alpha / (1 + alpha)}

  References:
    Ban & Ji, "Fair Resource Allocation in Multi-Task Learning", ICML 2024,
    arXiv:2402.15638.
  """
  above(alpha, hyperparameter("alpha"), 0)
  at_least(max_norm, hyperparameter("max_norm"), 0)
  above(reg_eps, hyperparameter("reg_eps"), 0)
  above(norm_eps, hyperparameter("norm_eps"), 0)
  positive_int(iterations, hyperparameter("iterations"))
  boolean(scale_by_num_tasks, hyperparameter("scale_by_num_tasks"))
  alpha = float(alpha)

  def weights(gramian, state, **extras):
    del extras
    gramian = gramian.astype(jnp.promote_types(gramian.dtype, jnp.float32))
    g, scale = normalize_gramian(gramian, norm_eps)
    w = _qp.power_allocation(g, alpha, ridge=reg_eps, iterations=iterations)
    w = w * scale ** (-alpha / (1.0 + alpha))
    if scale_by_num_tasks:
      w = w * gramian.shape[0]
    if max_norm > 0:
      w = _qp.clip_weights(w, gramian, max_norm)
    return w, state

  return from_weights(stateless_init, weights)
