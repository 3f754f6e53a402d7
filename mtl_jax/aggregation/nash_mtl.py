"""Nash-MTL: the Nash bargaining solution over the task gradients."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregation import _qp
from mtl_jax.aggregation.base import Aggregator, from_weights
from mtl_jax.validators import (above, at_least, boolean, hyperparameter,
                                 positive_int)


class NashMTLState(NamedTuple):
  """State of :func:`nash_mtl`."""
  alpha: jax.Array  # [T] last solved bargaining weights, before clipping
  count: jax.Array  # int32 scalar: number of updates done so far


def nash_mtl(
    max_norm: float = 1.0,
    update_weights_every: int = 1,
    homogeneous: bool = False,
    reg_eps: float = 1e-8,
    norm_eps: float = 1e-20,
    iterations: int = 25,
) -> Aggregator:
  r"""Nash-MTL: multi-task learning as a bargaining game.

  The update ``d = J^T alpha`` is the Nash bargaining solution of the tasks,
  ``argmax_{||d|| <= eps} sum_t log(g_t^T d)``, characterised (up to scale)
  by the bargaining equations

  .. math::
    G \alpha = 1 / \alpha \quad (\text{element-wise}), \qquad \alpha > 0,

  i.e. every task gets ``g_t^T d = 1 / alpha_t > 0``. As in the authors'
  code (``methods/weight_methods.py``, ``NashMTL``), the equations are solved
  on the normalised Gramian ``G / s`` with ``s = ||G||_F`` and the
  normalisation is scaled back out: their constraint ``alpha_t s (G / s
  alpha)_t >= 1`` is ``alpha_t (G alpha)_t >= 1``, so the returned weights
  solve the raw equations ``G alpha = 1 / alpha`` (``alpha = a / sqrt(s)``
  with ``(G / s) a = 1 / a``). Gradients scaled by ``c`` therefore give
  weights scaled by ``1 / c`` and an update of constant norm (``||J^T
  alpha||^2 = alpha^T G alpha = T``) before the ``max_norm`` clip.

  ``homogeneous=True`` returns ``a = sqrt(s) alpha`` instead, the solution
  of the normalised equations: the update is then homogeneous of degree one
  in the gradients, like a plain gradient. This was this library's default
  (``normalize=True``) before issue 16, wrongly described as the reference
  behaviour; it is not the authors' method.

  The paper solves the equations with a sequence of convex programs (cvxpy);
  here they are the stationarity conditions of the strictly convex
  ``1/2 a^T (G/s + reg_eps I) a - sum_t log a_t``, minimised by damped Newton
  with a fixed number of ``iterations``
  (:func:`mtl_jax.aggregation._qp.power_allocation` with ``alpha = 1``). The
  ridge ``reg_eps`` keeps the problem bounded when ``G`` is singular (e.g.
  opposite gradients have no bargaining solution); a task with a zero
  gradient then gets a large weight that multiplies a zero gradient.

  Gradients that are anti-parallel or duplicated to float32 precision (as on
  a Pareto set) give a Gramian that is indefinite by rounding. The solver
  works on its positive semi-definite part with a ridge of at least one
  float32 ulp of its largest eigenvalue (``~1.2e-7`` on the normalised
  Gramian) and never lets the objective increase, so ``||a|| <= sqrt(T /
  ridge)`` on the normalised Gramian (``||alpha|| <= sqrt(T / (ridge s))``
  for the returned raw solution); the clip uses a norm estimate that
  rounding cannot make zero or negative
  (:func:`mtl_jax.aggregation._qp.clip_weights`), so the update norm stays
  below ``max_norm``.

  ``update_weights_every = k`` recomputes the weights every ``k``-th update
  and reuses the stored ones in between (the count lives in the state);
  ``max_norm > 0`` rescales the weights so that ``||J^T w|| <= max_norm``,
  like the reference's ``clip_grad_norm_`` on the shared parameters (with
  the representation engine it bounds the representation-gradient norm).

  Args:
    max_norm: clip the update norm to this value, ``>= 0``; ``0`` disables
      clipping. The reference default is ``1.0``.
    update_weights_every: recompute the weights every this many updates,
      integer ``>= 1``.
    homogeneous: ``False`` (the authors' code): the bargaining solution of
      the raw Gramian; ``True``: ``sqrt(||G||_F)`` times it (the solution on
      the Frobenius-normalised Gramian).
    reg_eps: ridge added to the normalised Gramian, ``> 0``; values below
      float32 resolution (``1.2e-7`` times its largest eigenvalue) are
      raised to it. It moves the weights by about ``reg_eps / (G_tt / s)``
      relative, so it only matters for tasks whose gradient is ~1e-4 times
      smaller than the others, or for (nearly) opposite gradients.
    norm_eps: floor of the normalisation scale ``s``, ``> 0``.
    iterations: Newton steps, ``>= 1``.

  Returns:
    An :class:`~mtl_jax.aggregation.base.Aggregator` with ``weights``; its
    state is a :class:`NashMTLState`.

  Examples:
    >>> method = nash_mtl(max_norm=0.0)
    >>> grads = {"w": jnp.array([[2.0, 0.0], [0.0, 0.5]])}
    >>> _, state = method.update(grads, method.init(2))
    >>> state.alpha  # 1 / ||g_t|| for orthogonal gradients  # doctest: +SKIP
    Array([0.5, 2. ], dtype=float32)

  References:
    Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya,
    "Multi-Task Learning as a Bargaining Game", ICML 2022, arXiv:2202.01017.
  """
  at_least(max_norm, hyperparameter("max_norm"), 0)
  positive_int(update_weights_every, hyperparameter("update_weights_every"))
  above(reg_eps, hyperparameter("reg_eps"), 0)
  above(norm_eps, hyperparameter("norm_eps"), 0)
  positive_int(iterations, hyperparameter("iterations"))
  boolean(homogeneous, hyperparameter("homogeneous"))

  def init(num_tasks, params=None):
    del params
    return NashMTLState(alpha=jnp.ones((num_tasks,), jnp.float32),
                        count=jnp.zeros((), jnp.int32))

  def solve(gramian):
    big = jnp.maximum(jnp.max(jnp.abs(gramian)), norm_eps)  # No overflow:
    scale = jnp.maximum(big * jnp.linalg.norm(gramian / big), norm_eps)
    alpha = _qp.power_allocation(gramian / scale, 1.0, ridge=reg_eps,
                                 iterations=iterations)
    if not homogeneous:
      alpha = alpha / jnp.sqrt(scale)  # The authors' scaling back.
    return alpha.astype(jnp.float32)

  def weights(gramian, state, **extras):
    del extras
    gramian = gramian.astype(jnp.promote_types(gramian.dtype, jnp.float32))
    if update_weights_every == 1:
      alpha = solve(gramian)
    else:
      alpha = jax.lax.cond(state.count % update_weights_every == 0, solve,
                           lambda _: state.alpha, gramian)
    w = alpha
    if max_norm > 0:
      w = _qp.clip_weights(w, gramian, max_norm)
    return w, NashMTLState(alpha=alpha, count=state.count + 1)

  return from_weights(init, weights)
