"""GradNorm: balance the weighted gradient norms of the tasks."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mtl_jax.aggregation.gramians import task_norms
from mtl_jax.validators import (above, at_least, choice, hyperparameter,
                                 positive_int)
from mtl_jax.weighting import base


class GradNormState(NamedTuple):
  """State of :func:`gradnorm`."""

  weights: jax.Array  # [T] learned task weights, positive, summing to T
  logits: jax.Array  # [T] s with w = T softmax(s) ("softmax"), else unused
  initial_losses: jax.Array  # [T] L_t(0), the losses of the first update
  opt_state: optax.OptState  # inner optimizer state for weights ([T] leaves)
  count: jax.Array  # [] int32, number of updates so far


def gradnorm(
    alpha: float = 1.5,
    learning_rate: float = 1e-2,
    *,
    min_weight: float = 1e-3,
    optimizer: optax.GradientTransformation | None = None,
    eps: float = base.LOSS_EPS,
    parametrization: str = "direct",
) -> base.Weighting:
  """GradNorm: learn weights that equalise the tasks' training rates.

  With ``n_t = ||grad L_t||`` (``sqrt(G_tt)`` of the ``gramian`` extra) and the
  current learned weights ``w``::

    G_t = w_t n_t                        weighted gradient norm of task t
    Gbar = mean_t G_t
    r_t = (L_t / L_t(0)) / mean_j (L_j / L_j(0))  relative inverse train rate
    L_grad(w) = sum_t | G_t - Gbar r_t^alpha |,

  where the target ``Gbar r_t^alpha`` is held constant (as in the paper). A task
  that trains slower (larger ``r_t``) gets a larger target norm. ``update``
  returns the current ``w``, then takes one step of the inner optimizer (Adam
  with ``learning_rate`` by default) along the closed-form gradient::

    d L_grad / d w_t = sign(G_t - Gbar r_t^alpha) n_t,

  clamps ``w`` at ``min_weight`` and renormalises it to ``sum_t w_t = K``. The
  first update stores ``L(0)``. Loss ratios are computed in log space with
  ``eps`` so losses of 0 stay finite.

  Parametrisation: the paper (and the default ``"direct"``) learns ``w``
  itself, clamped and renormalised as above. LibMTL learns logits ``s`` with
  ``w = K softmax(s)`` (``s = 0`` at the start, no clamp needed);
  ``parametrization="softmax"`` does that, stepping ``s`` along

    d L_grad / d s = K p * (v - p . v),   p = softmax(s),
    v_t = sign(G_t - Gbar r_t^alpha) n_t.

  (LibMTL also lets ``L_grad`` backpropagate into the network and starts
  after one epoch of equal weights; neither is reproduced.)

  The paper takes the gradient norms w.r.t. the last shared layer; the trainer
  here passes the Gramian of the gradients w.r.t. all shared parameters (or
  the shared representation, depending on its engine). The paper trains ``w``
  with the network's optimizer; here it has its own, stored in the state.

  Args:
    alpha: asymmetry ``alpha >= 0``; 0 pulls every weighted gradient norm to
      the same value, larger values favour slower tasks more. Paper: 0.12 to
      3, 1.5 on NYUv2.
    learning_rate: inner learning rate of the default Adam optimizer for ``w``
      (> 0). Ignored when ``optimizer`` is given.
    min_weight: floor applied to ``w`` before renormalising (> 0), keeping
      weights positive.
    optimizer: optax transformation for ``w`` replacing Adam.
    eps: added to losses inside the log of the loss ratio (> 0).
    parametrization: ``"direct"`` (the paper) or ``"softmax"`` (LibMTL).

  Returns:
    A :class:`~mtl_jax.weighting.base.Weighting` with state
    :class:`GradNormState` and ``needs = {"gramian"}``.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = gradnorm(alpha=0.0, learning_rate=0.1)
    >>> state = method.init(2)
    >>> gramian = jnp.diag(jnp.array([1.0, 4.0]))  # norms 1 and 2
    >>> weights, state = method.update(jnp.ones(2), state, gramian=gramian)
    >>> weights.tolist()
    [1.0, 1.0]
    >>> # G = [1, 2] vs. target 1.5: w_0 up, w_1 down by lr, then sum -> 2.
    >>> [round(w, 4) for w in state.weights.tolist()]
    [1.1, 0.9]

  References:
    Z. Chen, V. Badrinarayanan, C.-Y. Lee, A. Rabinovich. "GradNorm: Gradient
    Normalization for Adaptive Loss Balancing in Deep Multitask Networks".
    ICML 2018. arXiv:1711.02257.
  """
  at_least(alpha, hyperparameter("alpha"), 0)
  inner = base.inner_optimizer(learning_rate, optimizer)
  above(min_weight, hyperparameter("min_weight"), 0)
  above(eps, hyperparameter("eps"), 0)
  choice(parametrization, hyperparameter("parametrization"),
         ("direct", "softmax"))
  softmax = parametrization == "softmax"

  def init(num_tasks: int) -> GradNormState:
    num_tasks = positive_int(num_tasks, "num_tasks")
    weights = jnp.ones((num_tasks,), jnp.float32)
    logits = jnp.zeros((num_tasks,), jnp.float32)
    return GradNormState(weights, logits, jnp.ones((num_tasks,), jnp.float32),
                         inner.init(logits if softmax else weights),
                         jnp.zeros((), jnp.int32))

  def update(losses: jax.Array, state: GradNormState, *,
             gramian: jax.Array | None = None, **extras):
    del extras
    num_tasks = state.weights.shape[0]
    losses = base.as_losses(losses, num_tasks)
    gramian = base.as_gramian(gramian, num_tasks, "gradnorm")
    dtype = state.weights.dtype
    current = losses.astype(dtype)
    initial = jnp.where(state.count == 0, current, state.initial_losses)

    norms = task_norms(gramian.astype(dtype))
    weights = state.weights
    weighted_norms = weights * norms
    mean_norm = jnp.mean(weighted_norms)
    # log of (L_t / L_t(0)) / mean_j (L_j / L_j(0)), stable for any scale.
    log_rate = base.safe_log(current, eps) - base.safe_log(initial, eps)
    log_r = log_rate - jax.nn.logsumexp(log_rate) + jnp.log(num_tasks)
    target = jax.lax.stop_gradient(mean_norm * jnp.exp(alpha * log_r))
    grad = jnp.sign(weighted_norms - target) * norms

    if softmax:
      p = jax.nn.softmax(state.logits)
      grad_s = num_tasks * p * (grad - jnp.dot(p, grad))
      updates, opt_state = inner.update(grad_s, state.opt_state, state.logits)
      logits = optax.apply_updates(state.logits, updates)
      new_weights = num_tasks * jax.nn.softmax(logits)
    else:
      updates, opt_state = inner.update(grad, state.opt_state, weights)
      new_weights = jnp.maximum(optax.apply_updates(weights, updates),
                                min_weight)
      new_weights = num_tasks * new_weights / jnp.sum(new_weights)
      logits = state.logits
    new_state = GradNormState(new_weights, logits, initial, opt_state,
                              state.count + 1)
    return weights.astype(losses.dtype), new_state

  return base.Weighting(init, update, frozenset({"gramian"}))
