"""DB-MTL's loss-level approximation (``db_mtl_norms``)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.gramians import task_norms
from mtl_jax.validators import above, at_least, hyperparameter, in_range, positive_int
from mtl_jax.weighting import base


class DBMTLState(NamedTuple):
  """State of :func:`db_mtl_norms`."""

  norm_ema: jax.Array  # [T] EMA of ||grad log L_t||, the log-loss grad norms
  count: jax.Array  # [] int32, number of updates so far


def db_mtl_norms(beta: float = 0.9, beta_sigma: float = 0.0,
                 eps: float = base.LOSS_EPS) -> base.Weighting:
  """DB-MTL approximated from the Gramian: an EMA of the gradient norms.

  **An approximation.** The exact method (the paper and its authors' code)
  keeps an EMA of the gradient *vectors* as the direction; it is the
  aggregator ``aggregation.get("db_mtl")``, which needs the ``jacobian``
  engine. With ``beta = 0.9`` the two directions differ by up to 0.9
  relative even for a fixed Jacobian. This weighting only needs the Gramian
  (registered as ``db_mtl_norms``).

  DB-MTL balances twice. Loss scale: every task is trained on
  ``log(L_t + eps)``, whose gradient ``g_t = grad L_t / (L_t + eps)`` does not
  depend on the loss' units. Gradient magnitude: each task's log-loss gradient
  is rescaled to the largest norm among the tasks, using an exponential
  moving average (EMA) of the gradients over steps::

    beta_k = beta / k^beta_sigma          (k = 1, 2, ... the update number)
    gbar_t(k) = beta_k gbar_t(k-1) + (1 - beta_k) g_t(k),   gbar_t(0) = 0
    direction = sum_t (max_j ||gbar_j|| / ||gbar_t||) gbar_t.

  A loss-weighting method only sees the Gramian of the current raw gradients
  (``||grad L_t|| = sqrt(G_tt)``), not the gradient vectors, so this
  implementation approximates the paper as follows (an approximation, not the
  exact method):

  * the EMA is taken of the norms, ``u_t(k) = beta_k u_t(k-1) + (1 - beta_k)
    ||g_t(k)||`` with ``||g_t|| = sqrt(G_tt) / (L_t + eps)``, instead of the
    norm of the EMA of the vectors (equal when successive gradients are
    parallel, larger otherwise);
  * the current gradient ``g_t(k)`` is used instead of the EMA vector
    ``gbar_t(k)`` as the direction (identical for ``beta = 0``).

  The gradient-equivalent weights on the raw losses are then::

    alpha_t = (max_j u_j + eps) / (u_t + eps),    w_t = alpha_t / (L_t + eps),

  so with ``beta = 0`` every task's weighted gradient ``w_t grad L_t`` has the
  same norm, ``max_j ||grad log L_j||``. (The reference rescales only the
  shared parameters' gradients and trains task heads on ``log L_t``; here the
  trainer applies ``w_t`` to the heads too.)

  Args:
    beta: EMA coefficient in ``[0, 1)``; 0.9 in LibMTL's default.
    beta_sigma: decay exponent of ``beta_k`` (>= 0); 0 in LibMTL's default.
    eps: added to the losses and norms in divisions and logs (> 0).

  Returns:
    A :class:`~mtl_jax.weighting.base.Weighting` with state :class:`DBMTLState`
    and ``needs = {"gramian"}``.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = db_mtl_norms(beta=0.0)
    >>> state = method.init(2)
    >>> # ||grad log L|| = [2/1, 2/4]: alpha = [1, 4], w = alpha / L
    >>> gramian = jnp.diag(jnp.array([4.0, 4.0]))
    >>> weights, state = method.update(jnp.array([1.0, 4.0]), state,
    ...                                gramian=gramian)
    >>> [round(w, 4) for w in weights.tolist()]
    [1.0, 1.0]

  References:
    B. Lin, W. Jiang, F. Ye, Y. Zhang, P. Chen, Y.-C. Chen, S. Liu, J. T. Kwok.
    "Dual-Balancing for Multi-Task Learning". 2023. arXiv:2308.12029.
  """
  in_range(beta, hyperparameter("beta"), 0.0, 1.0)
  if beta == 1.0:
    raise ValueError("Hyperparameter 'beta' must be < 1, got 1.0.")
  at_least(beta_sigma, hyperparameter("beta_sigma"), 0)
  above(eps, hyperparameter("eps"), 0)

  def init(num_tasks: int) -> DBMTLState:
    num_tasks = positive_int(num_tasks, "num_tasks")
    return DBMTLState(jnp.zeros((num_tasks,), jnp.float32),
                      jnp.zeros((), jnp.int32))

  def update(losses: jax.Array, state: DBMTLState, *,
             gramian: jax.Array | None = None, **extras):
    del extras
    num_tasks = state.norm_ema.shape[0]
    losses = base.as_losses(losses, num_tasks)
    gramian = base.as_gramian(gramian, num_tasks, "db_mtl")
    dtype = state.norm_ema.dtype
    inv_loss = jnp.exp(-base.safe_log(losses.astype(dtype), eps))
    log_grad_norms = task_norms(gramian.astype(dtype)) * inv_loss

    k = (state.count + 1).astype(dtype)
    beta_k = beta / k ** beta_sigma
    norm_ema = log_grad_norms + beta_k * (state.norm_ema - log_grad_norms)
    alpha = (jnp.max(norm_ema) + eps) / (norm_ema + eps)
    weights = alpha * inv_loss
    return weights.astype(losses.dtype), DBMTLState(norm_ema, state.count + 1)

  return base.Weighting(init, update, frozenset({"gramian"}))
