"""FAMO: fast adaptive multitask optimization."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mtl_jax.validators import above, at_least, choice, hyperparameter, positive_int
from mtl_jax.weighting import base


class FAMOState(NamedTuple):
  """State of :func:`famo`."""

  logits: jax.Array  # [T] xi, task-weighting logits; z = softmax(xi)
  opt_state: optax.OptState  # inner optimizer state for logits ([T] leaves)
  prev_losses: jax.Array  # [T] losses of the previous update
  count: jax.Array  # [] int32, number of updates so far


def famo(learning_rate: float = 0.025, weight_decay: float = 1e-3,
         eps: float = base.LOSS_EPS, weights_sum: str = "num_tasks"
         ) -> base.Weighting:
  """FAMO: decrease all task losses at the same (log) rate, in O(1).

  FAMO keeps logits ``xi`` (initially 0) and ``z = softmax(xi)``. The model is
  updated along the gradient of ``sum_t z_t log(L_t + eps)`` rescaled by
  ``c = 1 / sum_j z_j / (L_j + eps)``; the gradient-equivalent weights on the
  raw losses are therefore::

    w_t = K c z_t / (L_t + eps)
        = K (z_t / (L_t + eps)) / sum_j z_j / (L_j + eps).

  They sum to ``K``: this is FAMO's update (whose weights sum to 1) times
  ``K``, so that it matches equal weighting's scale; with FAMO's own
  hyperparameters use a ``K`` times smaller model learning rate to reproduce
  the paper exactly, or pass ``weights_sum="one"`` for FAMO's own weights
  (``c z_t / (L_t + eps)``, summing to 1). Weights are computed as ``K softmax(xi - log(L + eps))``,
  finite for any loss.

  After a model step FAMO measures each task's log-loss decrease
  ``delta_t = log L_t(before) - log L_t(after)`` and moves the logits so that
  tasks that improved more get less weight::

    xi <- xi - beta (J_z(xi)^T delta + gamma xi),
    J_z^T delta = z * (delta - z . delta),

  with Adam as the step (as the reference code does: Adam with L2 weight
  decay ``gamma``). The paper evaluates ``L(after)`` on the same batch with an
  extra forward pass. Here the update is done one step late: at update ``k``
  (``k >= 1``) ``delta = log(L(k-1) + eps) - log(L(k) + eps)`` from the stored
  previous losses (a different minibatch), the logits are updated, and then
  the weights for step ``k`` are computed. The first update only stores the
  losses (``z`` uniform). As with any Adam step, the logit update is
  invariant to the scale of ``delta``: differences between the tasks' log
  decreases at float round-off level still move the logits by up to about
  ``learning_rate`` per step (as in the reference code).

  Args:
    learning_rate: the logits' step size ``beta`` (> 0); the paper uses 0.025.
    weight_decay: the logits' L2 regularisation ``gamma`` (>= 0); 1e-3 as in
      the paper's Algorithm 2 and LibMTL (the official code defaults to 1e-5).
    eps: added to losses in the logs (> 0).
    weights_sum: ``"num_tasks"`` (default: weights sum to ``K``, the scale
      of equal weighting) or ``"one"`` (the paper's and official code's).

  Returns:
    A :class:`~mtl_jax.weighting.base.Weighting` with state :class:`FAMOState`.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = famo()
    >>> state = method.init(2)
    >>> weights, state = method.update(jnp.array([1.0, 3.0]), state)
    >>> # z uniform: w = 2 (1/L) / sum(1/L)
    >>> [round(w, 4) for w in weights.tolist()]
    [1.5, 0.5]

  References:
    B. Liu, Y. Feng, P. Stone, Q. Liu. "FAMO: Fast Adaptive Multitask
    Optimization". NeurIPS 2023. arXiv:2306.03792.
  """
  above(learning_rate, hyperparameter("learning_rate"), 0)
  at_least(weight_decay, hyperparameter("weight_decay"), 0)
  above(eps, hyperparameter("eps"), 0)
  choice(weights_sum, hyperparameter("weights_sum"), ("num_tasks", "one"))
  inner = optax.chain(optax.add_decayed_weights(weight_decay),
                      optax.adam(learning_rate))

  def init(num_tasks: int) -> FAMOState:
    num_tasks = positive_int(num_tasks, "num_tasks")
    logits = jnp.zeros((num_tasks,), jnp.float32)
    return FAMOState(logits, inner.init(logits),
                     jnp.ones((num_tasks,), jnp.float32),
                     jnp.zeros((), jnp.int32))

  def update(losses: jax.Array, state: FAMOState, **extras):
    del extras
    num_tasks = state.logits.shape[0]
    losses = base.as_losses(losses, num_tasks)
    current = losses.astype(state.logits.dtype)
    log_losses = base.safe_log(current, eps)

    # One step late: the decrease from the previous update to this one.
    delta = base.safe_log(state.prev_losses, eps) - log_losses
    z = jax.nn.softmax(state.logits)
    grad = z * (delta - jnp.dot(z, delta))  # (d softmax / d xi)^T delta
    updates, opt_state = inner.update(grad, state.opt_state, state.logits)
    logits = optax.apply_updates(state.logits, updates)
    started = state.count > 0
    logits, opt_state = jax.tree.map(
        lambda new, old: jnp.where(started, new, old),
        (logits, opt_state), (state.logits, state.opt_state))

    total = num_tasks if weights_sum == "num_tasks" else 1
    weights = total * jax.nn.softmax(logits - log_losses)
    new_state = FAMOState(logits, opt_state, current, state.count + 1)
    return weights.astype(losses.dtype), new_state

  return base.Weighting(init, update)
