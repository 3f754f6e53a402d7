"""ExcessMTL's loss-level approximation (``excess_mtl_norms``)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.validators import above, hyperparameter, positive_int
from mtl_jax.weighting import base


class ExcessMTLState(NamedTuple):
  """State of :func:`excess_mtl_norms`."""

  log_weights: jax.Array  # [T] log task weights, logsumexp = log T
  sq_grad_sum: jax.Array  # [T] running sum of ||grad L_t||^2 (AdaGrad)
  initial_risk: jax.Array  # [T] excess-risk estimate of the first update
  count: jax.Array  # [] int32, number of updates so far


def excess_mtl_norms(step_size: float = 1e-2, *, adagrad_eps: float = 1e-7,
               eps: float = base.LOSS_EPS) -> base.Weighting:
  """ExcessMTL from the Gramian: a scalar AdaGrad accumulator per task.

  Registered as ``excess_mtl_norms``.

  ExcessMTL weights tasks by their *excess risk* ``L_t(theta) - L_t*`` rather
  than by the loss itself, so tasks with large irreducible noise do not take
  over. The excess risk is estimated by a second-order Taylor expansion with
  a diagonal AdaGrad-style Hessian estimate ``H_t = sqrt(sum_s g_t(s)^2)``::

    e_t ~ g_t^T H_t^{-1} g_t
        = sum_i g_{t,i}^2 / sqrt(sum_s g_{t,i}(s)^2 + adagrad_eps),

  normalised by the first update's estimate, ``rhat_t = e_t / e_t(0)``. The
  weights (initially 1) follow an exponentiated-gradient (mirror ascent)
  step, renormalised to sum to ``K``::

    w_t <- K w_t exp(step_size rhat_t) / sum_j w_j exp(step_size rhat_j);

  the first update only records ``e(0)``. The weights of the current update are
  returned (so they include this step's risk).

  **An approximation** of the paper's method, which is the aggregator
  ``aggregation.get("excess_mtl")`` (per-coordinate accumulator, ``jacobian``
  engine). A loss-weighting method only sees the Gramian
  (``||g_t||^2 = G_tt``), not per-coordinate squared gradients, so a scalar
  AdaGrad accumulator per task is used::

    S_t(k) = sum_{s <= k} G_tt(s),   e_t = G_tt / sqrt(S_t + adagrad_eps).

  If a task's squared gradient keeps a fixed profile over the coordinates,
  ``g_{t,i}(s)^2 = c_{t,i} ||g_t(s)||^2`` for all steps ``s``, the
  per-coordinate estimate is ``sum_i sqrt(c_{t,i})`` times this one (ignoring
  ``adagrad_eps``), a constant that cancels in ``rhat``, so the two agree; when
  the profile changes over time this is only a proxy.

  The weights are kept as normalised log-weights, so large risk ratios (e.g.
  an ``e(0)`` of 0, guarded by ``eps``) give a one-hot weight vector rather
  than an overflow.

  Args:
    step_size: the exponentiated-gradient step (> 0); LibMTL's default 1e-2.
    adagrad_eps: added under the AdaGrad square root (> 0), as in the reference.
    eps: added to ``e(0)`` in the ratio (> 0).

  Returns:
    A :class:`~mtl_jax.weighting.base.Weighting` with state
    :class:`ExcessMTLState` and ``needs = {"gramian"}``.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = excess_mtl_norms(step_size=1.0)
    >>> state = method.init(2)
    >>> gramian = jnp.eye(2)
    >>> weights, state = method.update(jnp.ones(2), state, gramian=gramian)
    >>> weights.tolist()
    [1.0, 1.0]
    >>> # task 1's gradient norm quadruples: its excess risk grows the most
    >>> weights, state = method.update(
    ...     jnp.ones(2), state, gramian=jnp.diag(jnp.array([1.0, 16.0])))
    >>> bool(weights[1] > 1.0 > weights[0])
    True

  References:
    Y. He, S. Zhou, G. Zhang, H. Yun, Y. Xu, B. Zeng, T. Chilimbi, H. Zhao.
    "Robust Multi-Task Learning with Excess Risks". ICML 2024.
    arXiv:2402.02009.
  """
  above(step_size, hyperparameter("step_size"), 0)
  above(adagrad_eps, hyperparameter("adagrad_eps"), 0)
  above(eps, hyperparameter("eps"), 0)

  def init(num_tasks: int) -> ExcessMTLState:
    num_tasks = positive_int(num_tasks, "num_tasks")
    zeros = jnp.zeros((num_tasks,), jnp.float32)
    return ExcessMTLState(zeros, zeros, zeros, jnp.zeros((), jnp.int32))

  def update(losses: jax.Array, state: ExcessMTLState, *,
             gramian: jax.Array | None = None, **extras):
    del extras
    num_tasks = state.log_weights.shape[0]
    losses = base.as_losses(losses, num_tasks)
    gramian = base.as_gramian(gramian, num_tasks, "excess_mtl")
    gramian = gramian.astype(state.sq_grad_sum.dtype)
    sq_norms = jnp.maximum(jnp.diagonal(gramian), 0.0)
    sq_grad_sum = state.sq_grad_sum + sq_norms
    risk = sq_norms / jnp.sqrt(sq_grad_sum + adagrad_eps)
    first = state.count == 0
    initial_risk = jnp.where(first, risk, state.initial_risk)
    relative = risk / (initial_risk + eps)
    log_weights = jnp.where(first, state.log_weights,
                            state.log_weights + step_size * relative)
    log_weights = jax.nn.log_softmax(log_weights) + jnp.log(num_tasks)
    new_state = ExcessMTLState(log_weights, sq_grad_sum, initial_risk,
                               state.count + 1)
    return jnp.exp(log_weights).astype(losses.dtype), new_state

  return base.Weighting(init, update, frozenset({"gramian"}))
