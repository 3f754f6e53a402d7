"""ExcessMTL with the paper's per-coordinate AdaGrad excess-risk estimate."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.base import (Aggregator, all_finite, combine, keep_if,
                                      num_tasks_of, task_buffer)
from mtl_jax.validators import above, hyperparameter


class ExcessMTLState(NamedTuple):
  """State of the :func:`excess_mtl` aggregator."""
  log_weights: jax.Array   # [T] log task weights, logsumexp = log T
  sq_grad_sum: Any         # pytree of [T, *p]: per-coordinate sum of g^2
  initial_risk: jax.Array  # [T] excess-risk estimate of the first update
  count: jax.Array         # int32 scalar: number of updates so far


def excess_mtl(step_size: float = 1e-2, *, adagrad_eps: float = 1e-7,
               eps: float = 1e-8) -> Aggregator:
  r"""ExcessMTL: weights by the AdaGrad estimate of each task's excess risk.

  He et al. (ICML 2024) estimate the excess risk ``L_t - L_t*`` by a
  second-order expansion with the diagonal AdaGrad preconditioner
  ``H_t = diag(sqrt(S_t + adagrad_eps))``, ``S_t`` the per-coordinate sum of
  the squared task gradients (the authors' code, as LibMTL carries it):

  .. math::
    S_{t,i} &\leftarrow S_{t,i} + g_{t,i}^2, \qquad
    e_t = \sum_i \frac{g_{t,i}^2}{\sqrt{S_{t,i} + \epsilon_a}}, \\
    \hat r_t &= e_t / (e_t(0) + \epsilon), \qquad
    w_t \leftarrow T \frac{w_t \exp(\eta \hat r_t)}
                          {\sum_j w_j \exp(\eta \hat r_j)},

  with ``w = 1`` at the start; the first update only records ``e(0)``.
  The direction is ``d = sum_t w_t g_t`` with the current update's weights.
  Weights sum to ``T`` as in the authors' code.

  A step with a non-finite gradient returns a non-finite direction and
  leaves the state unchanged.

  The per-coordinate accumulator is per-parameter state, so ``weights`` is
  ``None``: this aggregator needs the full Jacobian (``jacobian`` engine) and
  ``init(num_tasks, params)``. The loss-level weighting ``excess_mtl`` (a
  scalar accumulator of ``||g_t||^2`` from the Gramian) is an approximation
  of it, exact only when each task's gradient keeps its per-coordinate
  profile over the steps.

  Args:
    step_size: the exponentiated-gradient step ``eta``, ``> 0`` (LibMTL's
      ``robust_step_size`` default 1e-2).
    adagrad_eps: added under the square root, ``> 0`` (1e-7 as the authors).
    eps: added to ``e(0)`` in the ratio, ``> 0`` (the authors add none).

  Returns:
    An :class:`~mtl_jax.aggregation.base.Aggregator` with ``weights=None``;
    its state is an :class:`ExcessMTLState`.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = excess_mtl(step_size=1.0)
    >>> state = method.init(2, {"w": jnp.zeros(2)})
    >>> d, state = method.update({"w": jnp.eye(2)}, state)  # Records e(0).
    >>> d, state = method.update({"w": jnp.diag(jnp.array([1.0, 4.0]))},
    ...                          state)
    >>> bool(jnp.exp(state.log_weights)[1] > 1.0)  # Task 1's risk grew.
    True

  References:
    Y. He, S. Zhou, G. Zhang, H. Yun, Y. Xu, B. Zeng, T. Chilimbi and
    H. Zhao, "Robust Multi-Task Learning with Excess Risks", ICML 2024,
    arXiv:2402.02009.
  """
  above(step_size, hyperparameter("step_size"), 0)
  above(adagrad_eps, hyperparameter("adagrad_eps"), 0)
  above(eps, hyperparameter("eps"), 0)

  def init(num_tasks, params=None):
    sums = task_buffer(num_tasks, params, method="excess_mtl",
                       keeps="keeps a per-coordinate AdaGrad sum for every task")
    zeros = jnp.zeros((num_tasks,), jnp.float32)
    return ExcessMTLState(zeros, sums, zeros, jnp.zeros((), jnp.int32))

  def update(grads, state, **extras):
    del extras
    t = num_tasks_of(grads)
    sq_grad_sum = jax.tree.map(lambda s, g: s + jnp.square(g.astype(s.dtype)),
                               state.sq_grad_sum, grads)

    def leaf_risk(s, g):
      g = g.astype(s.dtype)
      return jnp.sum((jnp.square(g) / jnp.sqrt(s + adagrad_eps)).reshape(
          t, -1), axis=1)

    risk = sum(jax.tree.leaves(jax.tree.map(leaf_risk, sq_grad_sum, grads)))
    risk = risk.astype(jnp.float32)
    first = state.count == 0
    initial_risk = jnp.where(first, risk, state.initial_risk)
    relative = risk / (initial_risk + eps)
    log_weights = jnp.where(first, state.log_weights,
                            state.log_weights + step_size * relative)
    log_weights = jax.nn.log_softmax(log_weights) + jnp.log(t)
    w = jnp.exp(log_weights)
    direction = combine(w, grads)
    new_state = ExcessMTLState(log_weights, sq_grad_sum, initial_risk,
                               state.count + 1)
    return direction, keep_if(all_finite(grads), new_state, state)

  return Aggregator(init=init, update=update, weights=None)
