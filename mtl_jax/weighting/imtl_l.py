"""IMTL-L: the loss-balancing half of Impartial Multi-Task Learning."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mtl_jax.validators import above, hyperparameter, positive_int
from mtl_jax.weighting import base


class IMTLLState(NamedTuple):
  """State of :func:`imtl_l`."""

  scales: jax.Array  # [T] s_t, the learned log-scales (weights e^{s_t})
  opt_state: optax.OptState  # inner optimizer state for scales ([T] leaves)


def imtl_l(
    learning_rate: float = 1e-2,
    *,
    max_abs_scale: float = 30.0,
    optimizer: optax.GradientTransformation | None = None,
) -> base.Weighting:
  """IMTL-L: learned loss scales that make all scaled losses equal.

  Each task has a learned log-scale ``s_t`` (initialised to 0) and the joint
  objective is::

    total(theta, s) = sum_t exp(s_t) L_t(theta) - s_t.

  Its gradient w.r.t. the network is ``sum_t exp(s_t) grad L_t``, so the
  returned weights are ``w_t = exp(s_t)`` with the current ``s``. Then ``s``
  takes one step of the inner optimizer (Adam with ``learning_rate`` by
  default) along the closed-form gradient::

    d total / d s_t = exp(s_t) L_t - 1,

  whose zero is ``s_t = -log L_t``, where every scaled loss ``exp(s_t) L_t``
  equals 1: the scales make the tasks' losses impartial. (The ``-s_t`` term
  keeps ``s`` from collapsing to ``-inf``.) ``s`` is clipped to
  ``[-max_abs_scale, max_abs_scale]`` so a loss stuck at exactly 0 cannot
  overflow ``exp(s)``.

  In the paper ``s`` is trained jointly with the network; here it has its own
  optimizer whose state lives in :class:`IMTLLState`. The gradient half of IMTL
  (IMTL-G) is a gradient-aggregation method, in :mod:`mtl_jax.aggregation`.

  Args:
    learning_rate: inner learning rate of the default Adam optimizer for ``s``
      (> 0). Ignored when ``optimizer`` is given.
    max_abs_scale: bound on ``|s_t|`` (> 0).
    optimizer: optax transformation for ``s`` replacing Adam.

  Returns:
    A :class:`~mtl_jax.weighting.base.Weighting` with state :class:`IMTLLState`.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = imtl_l(learning_rate=0.1)
    >>> state = method.init(2)
    >>> weights, state = method.update(jnp.array([2.0, 0.5]), state)
    >>> weights.tolist()  # exp(0) before the first step
    [1.0, 1.0]
    >>> [round(s, 3) for s in state.scales.tolist()]  # Adam's first step
    [-0.1, 0.1]

  References:
    L. Liu, Y. Li, Z. Kuang, J.-H. Xue, Y. Chen, W. Yang, Q. Liao, W. Zhang.
    "Towards Impartial Multi-task Learning". ICLR 2021.
    https://openreview.net/forum?id=IMPnRXEWpvr.
  """
  inner = base.inner_optimizer(learning_rate, optimizer)
  above(max_abs_scale, hyperparameter("max_abs_scale"), 0)

  def init(num_tasks: int) -> IMTLLState:
    num_tasks = positive_int(num_tasks, "num_tasks")
    scales = jnp.zeros((num_tasks,), jnp.float32)
    return IMTLLState(scales, inner.init(scales))

  def update(losses: jax.Array, state: IMTLLState, **extras):
    del extras
    losses = base.as_losses(losses, state.scales.shape[0])
    scales = state.scales
    weights = jnp.exp(scales)
    grad = weights * jnp.maximum(losses, 0.0).astype(scales.dtype) - 1.0
    updates, opt_state = inner.update(grad, state.opt_state, scales)
    scales = jnp.clip(optax.apply_updates(scales, updates),
                      -max_abs_scale, max_abs_scale)
    return weights.astype(losses.dtype), IMTLLState(scales, opt_state)

  return base.Weighting(init, update)
