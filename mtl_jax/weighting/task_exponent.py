"""Task-exponent adjustment: adaptive exponents of a weighted geometric mean."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.validators import above, hyperparameter, in_range, positive_int
from mtl_jax.weighting import base


class TaskExponentState(NamedTuple):
  """State of :func:`task_exponent`."""

  exponents: jax.Array  # [T] p_t >= theta, sum_t p_t = 1 (start: 1/T each)
  initial_losses: jax.Array  # [T] L_t(0), the losses of the first update
  count: jax.Array  # [] int32, number of updates so far


def _project_floored_simplex(values: jax.Array, floor: float) -> jax.Array:
  """Euclidean projection onto ``{p : p_t >= floor, sum_t p_t = 1}``.

  Shifting by ``floor`` turns it into the projection onto the simplex of mass
  ``1 - K floor``, solved exactly by sorting (Held et al., 1974; Duchi et al.,
  2008): ``p = floor + max(v - floor - tau, 0)``.
  """
  num_tasks = values.shape[0]
  mass = 1.0 - num_tasks * floor
  shifted = values - floor
  ordered = jnp.sort(shifted)[::-1]
  excess = jnp.cumsum(ordered) - mass
  ranks = jnp.arange(1, num_tasks + 1, dtype=values.dtype)
  support = jnp.maximum(jnp.sum(ordered - excess / ranks > 0), 1)
  tau = excess[support - 1] / support.astype(values.dtype)
  return floor + jnp.maximum(shifted - tau, 0.0)


def task_exponent(eta: float = 0.01, theta: float = 0.01,
                  eps: float = base.LOSS_EPS) -> base.Weighting:
  """Task-exponent adjustment of a weighted geometric mean of the losses.

  The task weights ``p_t`` are the exponents of a weighted geometric mean of
  the losses (``sum_t p_t = 1``)::

    total = prod_t (L_t + eps)^{p_t} = exp(sum_t p_t log(L_t + eps)).

  All exponents start at ``1/K``, where ``total`` is the geometric loss
  strategy (GLS). The returned weights are the gradient-equivalent ones::

    w_t = d total / d L_t = p_t total / (L_t + eps),

  so ``sum_t w_t grad L_t`` is the gradient of ``total`` (at ``p = 1/K``
  exactly the weights of :func:`~mtl_jax.weighting.gls.gls`).

  Exponent rule (the project's precise reading of "each task's weight moves by
  eta times its difference from the other tasks' weights according to how the
  task performs relative to the others, floored at theta"). At update ``k``:

  1. Relative performance. ``rho_t = (L_t(k) + eps) / (L_t(0) + eps)`` is
     the task's loss ratio to its first loss (lower = further trained), and::

       d_t = log rho_t - log mean_{j != t} rho_j

     is positive when task ``t`` lags behind the others (its loss fell by a
     smaller factor) and negative when it leads.
  2. Move. With ``pbar_t = mean_{j != t} p_j`` the others' mean exponent::

       p'_t = p_t + eta d_t (|p_t - pbar_t| + 1/K).

     The step is ``eta`` times the signed performance difference, scaled by how
     far ``p_t`` already is from the other tasks' exponents; the ``1/K`` term
     lets equal exponents (the start) move at all.
  3. Floor. ``p`` becomes the Euclidean projection of ``p'`` onto
     ``{p : p_t >= theta, sum_t p_t = 1}``: every exponent is floored at
     ``theta`` and the others shift by a common amount to keep the sum 1
     (when no floor binds and ``d`` is balanced, e.g. ``K = 2``, this is
     ``p'`` itself).

  ``L(0)`` is stored at the first update (so ``d = 0`` and ``p = 1/K`` there),
  and the weights of update ``k`` use the exponents after its move. With one
  task ``p = 1`` and ``w = 1``. Lagging tasks gain exponent, leading ones lose
  it down to ``theta``.

  Args:
    eta: step size of the exponent move (> 0).
    theta: floor of every exponent, ``0 <= theta <= 1/K`` (checked at
      ``init``); ``theta = 1/K`` freezes GLS.
    eps: added to losses in logs and ratios (> 0).

  Returns:
    A :class:`~mtl_jax.weighting.base.Weighting` with state
    :class:`TaskExponentState`.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = task_exponent(eta=0.1, theta=0.05)
    >>> state = method.init(2)
    >>> weights, state = method.update(jnp.array([1.0, 4.0]), state)
    >>> [round(w, 4) for w in weights.tolist()]  # GLS at the start
    [1.0, 0.25]
    >>> # task 0 did not improve, task 1 halved: task 0 lags, d = +-log 2
    >>> weights, state = method.update(jnp.array([1.0, 2.0]), state)
    >>> [round(p, 4) for p in state.exponents.tolist()]
    [0.5347, 0.4653]

  References:
    No paper: the "task-exponent adjustment" of this project's seed
    specification, made precise as above. Its starting point is GLS:
    S. Chennupati, G. Sistu, S. Yogamani, S. A. Rawashdeh. "MultiNet++:
    Multi-Stream Feature Aggregation and Geometric Loss Strategy for
    Multi-Task Learning". CVPR Workshops 2019. arXiv:1904.08492.
  """
  above(eta, hyperparameter("eta"), 0)
  in_range(theta, hyperparameter("theta"), 0.0, 1.0)
  above(eps, hyperparameter("eps"), 0)

  def init(num_tasks: int) -> TaskExponentState:
    num_tasks = positive_int(num_tasks, "num_tasks")
    if theta * num_tasks > 1.0:
      raise ValueError(
          f"Hyperparameter 'theta' must be <= 1/K = {1.0 / num_tasks:.6g} for "
          f"K={num_tasks} tasks (the exponents sum to 1), got {theta!r}.")
    exponents = jnp.full((num_tasks,), 1.0 / num_tasks, jnp.float32)
    return TaskExponentState(exponents, jnp.ones((num_tasks,), jnp.float32),
                             jnp.zeros((), jnp.int32))

  def update(losses: jax.Array, state: TaskExponentState, **extras):
    del extras
    num_tasks = state.exponents.shape[0]
    losses = base.as_losses(losses, num_tasks)
    dtype = state.exponents.dtype
    current = jnp.maximum(losses.astype(dtype), 0.0)
    initial = jnp.where(state.count == 0, current, state.initial_losses)
    log_losses = base.safe_log(current, eps)
    exponents = state.exponents

    if num_tasks > 1:
      log_rho = log_losses - base.safe_log(initial, eps)
      others = ~jnp.eye(num_tasks, dtype=bool)
      # log mean_{j != t} rho_j, row t of a masked log-sum-exp.
      log_others = jax.nn.logsumexp(
          jnp.where(others, log_rho[None, :], -jnp.inf), axis=1
      ) - jnp.log(num_tasks - 1.0)
      lag = log_rho - log_others
      others_mean = (jnp.sum(exponents) - exponents) / (num_tasks - 1)
      gap = jnp.abs(exponents - others_mean)
      moved = exponents + eta * lag * (gap + 1.0 / num_tasks)
      exponents = _project_floored_simplex(moved, theta)

    log_total = jnp.sum(exponents * log_losses)
    weights = exponents * jnp.exp(log_total - log_losses)
    new_state = TaskExponentState(exponents, initial, state.count + 1)
    return weights.astype(losses.dtype), new_state

  return base.Weighting(init, update)
