"""Dynamic weight average (DWA), from the MTAN paper."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.validators import above, hyperparameter, in_range, positive_int
from mtl_jax.weighting import base

# exp(80) ~ 5.5e34 still fits in float32; bounds the loss ratio.
_MAX_LOG_RATIO = 80.0


class DWAState(NamedTuple):
  """State of :func:`dwa`."""

  prev: jax.Array  # [T] (smoothed) losses seen at the previous update
  prev2: jax.Array  # [T] (smoothed) losses seen two updates ago
  count: jax.Array  # [] int32, number of updates so far


def dwa(temperature: float = 2.0, ema_decay: float = 0.0,
        eps: float = base.LOSS_EPS) -> base.Weighting:
  """Dynamic weight average: weight tasks by their recent rate of descent.

  A task whose loss fell less over the last step (ratio close to or above 1)
  gets a larger weight::

    r_t(k) = m_t(k-1) / m_t(k-2),        w(k) = K softmax(r(k) / temperature),

  and ``w = 1`` for the first two updates (``k = 0, 1``), when there is no
  ratio yet. The weights always sum to ``K``; ``temperature -> inf`` gives
  equal weighting.

  The paper averages the losses over whole epochs. This implementation works
  per update: ``m_t`` is an exponential moving average of the step losses,
  ``m(0) = L(0)``, ``m(k) = ema_decay m(k-1) + (1 - ema_decay) L(k)``. With the
  default ``ema_decay = 0`` it is the raw previous-step losses
  (``r_t(k) = L_t(k-1) / L_t(k-2)``); values close to 1 (e.g. 0.9) smooth out
  minibatch noise, closer to the paper's epoch averages. The ratio is computed
  as ``exp(log(m(k-1) + eps) - log(m(k-2) + eps))`` with the log difference
  clipped to ``[-80, 80]``, so losses of 0 or 1e15 stay finite.

  Args:
    temperature: softmax temperature ``T`` (> 0); the paper uses 2.
    ema_decay: decay of the loss moving average, in ``[0, 1)``; 0 uses the raw
      previous losses.
    eps: added to the losses inside the log ratio (> 0).

  Returns:
    A :class:`~mtl_jax.weighting.base.Weighting` with state :class:`DWAState`.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = dwa(temperature=2.0)
    >>> state = method.init(2)
    >>> for losses in ([1.0, 1.0], [0.5, 1.0]):
    ...   weights, state = method.update(jnp.array(losses), state)
    >>> weights.tolist()  # the first two updates give 1
    [1.0, 1.0]
    >>> weights, state = method.update(jnp.array([0.4, 0.9]), state)
    >>> # r = [0.5, 1.0]: w = 2 softmax([0.25, 0.5])
    >>> [round(w, 4) for w in weights.tolist()]
    [0.8756, 1.1244]

  References:
    S. Liu, E. Johns, A. J. Davison. "End-to-End Multi-Task Learning with
    Attention". CVPR 2019. arXiv:1803.10704.
  """
  above(temperature, hyperparameter("temperature"), 0)
  in_range(ema_decay, hyperparameter("ema_decay"), 0.0, 1.0)
  if ema_decay == 1.0:
    raise ValueError(
        "Hyperparameter 'ema_decay' must be < 1 (1 would never see a loss), "
        "got 1.0.")
  above(eps, hyperparameter("eps"), 0)

  def init(num_tasks: int) -> DWAState:
    num_tasks = positive_int(num_tasks, "num_tasks")
    ones = jnp.ones((num_tasks,), jnp.float32)
    return DWAState(ones, ones, jnp.zeros((), jnp.int32))

  def update(losses: jax.Array, state: DWAState, **extras):
    del extras
    losses = base.as_losses(losses, state.prev.shape[0])
    num_tasks = losses.shape[0]
    log_ratio = base.safe_log(state.prev, eps) - base.safe_log(state.prev2, eps)
    ratio = jnp.exp(jnp.clip(log_ratio, -_MAX_LOG_RATIO, _MAX_LOG_RATIO))
    dynamic = num_tasks * jax.nn.softmax(ratio / temperature)
    weights = jnp.where(state.count >= 2, dynamic, 1.0).astype(losses.dtype)

    current = jnp.maximum(losses, 0.0).astype(state.prev.dtype)
    smoothed = ema_decay * state.prev + (1.0 - ema_decay) * current
    smoothed = jnp.where(state.count == 0, current, smoothed)
    new_state = DWAState(prev=smoothed, prev2=state.prev,
                         count=state.count + 1)
    return weights, new_state

  return base.Weighting(init, update)
