"""DB-MTL: Dual-Balancing Multi-Task Learning (the exact gradient-level method)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.base import (Aggregator, all_finite, keep_if, num_tasks_of,
                                      task_buffer)
from mtl_jax.aggregation.gramians import gramian, safe_sqrt
from mtl_jax.validators import above, at_least, hyperparameter, in_range


class DBMTLState(NamedTuple):
  """State of the :func:`db_mtl` aggregator."""
  buffer: Any       # pytree of [T, *p]: EMA of the log-loss gradients
  count: jax.Array  # int32 scalar: number of updates done so far


def db_mtl(beta: float = 0.9, beta_sigma: float = 0.0,
           eps: float = 1e-8) -> Aggregator:
  r"""DB-MTL: log losses, an EMA of their gradients, scaled to the largest.

  DB-MTL balances twice (Lin et al., 2023, Algorithm 1; LibMTL's
  ``LibMTL/weighting/DB_MTL.py``). Loss scale: each task is trained on
  ``log(L_t + eps)``, whose gradient is ``g_t = grad L_t / (L_t + eps)``.
  Gradient magnitude: an exponential moving average of the gradient
  *vectors* is the direction, every task rescaled to the largest norm
  (update ``k = 1, 2, ...``):

  .. math::
    \beta_k &= \beta / k^{\beta_\sigma}, \qquad
    \bar g_t(k) = g_t(k) + \beta_k \big(\bar g_t(k-1) - g_t(k)\big),
    \quad \bar g_t(0) = 0, \\
    d &= \sum_t \frac{\max_j \|\bar g_j(k)\|}{\|\bar g_t(k)\| + \epsilon}
        \, \bar g_t(k).

  The aggregator receives the gradients of the raw losses and needs the
  ``losses`` extra to form ``g_t``; it has no ``weights`` (the direction is
  made of the tracked ``bar g``, not of the current gradients), so it needs
  the full Jacobian (``jacobian`` engine) and ``init(num_tasks, params)``
  allocates the ``[T, *p]`` buffer. The authors train the task-specific
  parameters on the log losses; in this library the trainer applies the
  weighting's weights to them (with ``equal``, on the raw losses).

  A step with a non-finite gradient or loss returns a non-finite direction
  and leaves the state unchanged.

  The cheap loss-level variant, the weighting ``db_mtl_norms`` (the EMA of
  the gradient norms from the Gramian and the current gradient as the
  direction), is an approximation of this method.

  Args:
    beta: EMA coefficient in ``[0, 1)``; 0.9 in LibMTL's default.
    beta_sigma: decay exponent of ``beta_k``, ``>= 0``; 0 in LibMTL.
    eps: added to the losses and to the norms, ``> 0`` (1e-8 as LibMTL).

  Returns:
    An :class:`~mtl_jax.aggregation.base.Aggregator` with ``weights=None``;
    its state is a :class:`DBMTLState`.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = db_mtl()
    >>> state = method.init(2, {"w": jnp.zeros(2)})
    >>> grads = {"w": jnp.array([[2.0, 0.0], [0.0, 0.5]])}
    >>> d, state = method.update(grads, state, losses=jnp.array([1.0, 0.5]))
    >>> # bar g = 0.1 (2, 0), 0.1 (0, 1): both rescaled to norm 0.2.
    >>> [round(x, 4) for x in d["w"].tolist()]
    [0.2, 0.2]

  References:
    B. Lin, W. Jiang, F. Ye, Y. Zhang, P. Chen, Y.-C. Chen, S. Liu and
    J. T. Kwok, "Dual-Balancing for Multi-Task Learning", 2023,
    arXiv:2308.12029.
  """
  in_range(beta, hyperparameter("beta"), 0.0, 1.0)
  if beta == 1.0:
    raise ValueError("Hyperparameter 'beta' must be < 1, got 1.0.")
  at_least(beta_sigma, hyperparameter("beta_sigma"), 0)
  above(eps, hyperparameter("eps"), 0)

  def init(num_tasks, params=None):
    buffer = task_buffer(num_tasks, params, method="db_mtl",
                         keeps="keeps an EMA of every task's gradient")
    return DBMTLState(buffer=buffer, count=jnp.zeros((), jnp.int32))

  def update(grads, state, *, losses=None, **extras):
    del extras
    if losses is None:
      raise ValueError("db_mtl needs the 'losses' extra (it differentiates "
                       "the log losses).")
    t = num_tasks_of(grads)
    losses = jnp.asarray(losses, jnp.float32).reshape(t)
    inv = 1.0 / (losses + eps)
    k = (state.count + 1).astype(jnp.float32)
    beta_k = beta / k ** beta_sigma

    def track(buf, g):
      g_log = g.astype(buf.dtype) * inv.reshape(
          (t,) + (1,) * (g.ndim - 1)).astype(buf.dtype)
      return g_log + beta_k * (buf - g_log)

    buffer = jax.tree.map(track, state.buffer, grads)
    norms = safe_sqrt(jnp.diag(gramian(buffer)))
    alpha = jnp.max(norms) / (norms + eps)
    direction = jax.tree.map(
        lambda b, g: jnp.tensordot(alpha.astype(b.dtype), b, axes=1,
                                   precision=jax.lax.Precision.HIGHEST
                                   ).astype(g.dtype), buffer, grads)
    new_state = DBMTLState(buffer=buffer, count=state.count + 1)
    return direction, keep_if(all_finite(grads, losses), new_state, state)

  return Aggregator(init=init, update=update, weights=None)
