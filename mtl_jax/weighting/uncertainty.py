"""Homoscedastic uncertainty weighting (Kendall, Gal and Cipolla)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtl_jax.validators import above, choice, hyperparameter, positive_int
from mtl_jax.weighting import base


class UncertaintyState(NamedTuple):
  """State of :func:`uncertainty`."""

  log_vars: jax.Array  # [T] s_t = log sigma_t^2, the learned log-variances
  opt_state: optax.OptState  # inner optimizer state for log_vars ([T] leaves)


def uncertainty(
    learning_rate: float = 1e-2,
    *,
    init_log_var: float = 0.0,
    max_abs_log_var: float = 30.0,
    optimizer: optax.GradientTransformation | None = None,
    form: str = "log_variance",
) -> base.Weighting:
  """Uncertainty weighting: learned homoscedastic log-variances.

  Each task has a learned log-variance ``s_t = log sigma_t^2`` and the joint
  objective is (the "log-variance" variant used by most implementations,
  e.g. LibMTL, which is twice Kendall et al.'s regression likelihood
  ``L_t / (2 sigma_t^2) + log sigma_t`` and is used for every task type)::

    total(theta, s) = sum_t exp(-s_t) L_t(theta) + s_t.

  Its gradient w.r.t. the network is ``sum_t exp(-s_t) grad L_t``, so the
  returned weights are ``w_t = exp(-s_t)`` with the current ``s`` (the
  regulariser ``s_t`` does not depend on the network). Then ``s`` takes one
  step of the inner optimizer (Adam with ``learning_rate`` by default) along
  the closed-form gradient::

    d total / d s_t = 1 - exp(-s_t) L_t,

  whose zero is ``s_t = log L_t``: for constant losses the weights converge to
  ``1 / L_t``. ``s`` is clipped to ``[-max_abs_log_var, max_abs_log_var]`` so a
  loss that stays at exactly 0 (optimum ``s = -inf``) cannot overflow
  ``exp(-s)``; the clip is inactive for losses in ``[e^-30, e^30]``.

  ``form="regression"`` uses Kendall et al.'s regression likelihood itself,
  ``sum_t L_t / (2 sigma_t^2) + log sigma_t = sum_t (exp(-s_t) L_t + s_t) /
  2``: half the default objective, so the weights are ``exp(-s_t) / 2`` and
  the gradient w.r.t. ``s`` is halved (which Adam's step, invariant to the
  gradient scale, barely notices; an SGD ``optimizer`` moves ``s`` half as
  fast). The default (``"log_variance"``) weights are twice the regression
  form's.

  In the paper ``s`` is trained by the network's optimizer; here it has its own
  optimizer whose state lives in :class:`UncertaintyState`, so ``update`` is
  pure and self-contained.

  Args:
    learning_rate: inner learning rate of the default Adam optimizer for ``s``
      (> 0). Ignored when ``optimizer`` is given.
    init_log_var: initial ``s_t`` for every task (finite); 0 gives weights 1.
    max_abs_log_var: bound on ``|s_t|`` (> 0).
    optimizer: optax transformation for ``s`` replacing Adam.
    form: ``"log_variance"`` (default, LibMTL's ``exp(-s) L + s``) or
      ``"regression"`` (Kendall et al.'s ``(exp(-s) L + s) / 2``).

  Returns:
    A :class:`~mtl_jax.weighting.base.Weighting` with state
    :class:`UncertaintyState`.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = uncertainty(learning_rate=0.1)
    >>> state = method.init(2)
    >>> weights, state = method.update(jnp.array([2.0, 0.5]), state)
    >>> weights.tolist()  # exp(-0) before the first step
    [1.0, 1.0]
    >>> [round(s, 3) for s in state.log_vars.tolist()]  # Adam's first step
    [0.1, -0.1]

  References:
    A. Kendall, Y. Gal, R. Cipolla. "Multi-Task Learning Using Uncertainty to
    Weigh Losses for Scene Geometry and Semantics". CVPR 2018.
    arXiv:1705.07115.
  """
  inner = base.inner_optimizer(learning_rate, optimizer)
  above(max_abs_log_var, hyperparameter("max_abs_log_var"), 0)
  choice(form, hyperparameter("form"), ("log_variance", "regression"))
  half = 0.5 if form == "regression" else 1.0
  if not np.isfinite(init_log_var) or abs(init_log_var) > max_abs_log_var:
    raise ValueError(
        "Hyperparameter 'init_log_var' must be finite and within "
        f"[-max_abs_log_var, max_abs_log_var], got {init_log_var!r}.")

  def init(num_tasks: int) -> UncertaintyState:
    num_tasks = positive_int(num_tasks, "num_tasks")
    log_vars = jnp.full((num_tasks,), init_log_var, jnp.float32)
    return UncertaintyState(log_vars, inner.init(log_vars))

  def update(losses: jax.Array, state: UncertaintyState, **extras):
    del extras
    losses = base.as_losses(losses, state.log_vars.shape[0])
    log_vars = state.log_vars
    weights = half * jnp.exp(-log_vars)
    grad = half - weights * jnp.maximum(losses, 0.0).astype(log_vars.dtype)
    updates, opt_state = inner.update(grad, state.opt_state, log_vars)
    log_vars = jnp.clip(optax.apply_updates(log_vars, updates),
                        -max_abs_log_var, max_abs_log_var)
    return weights.astype(losses.dtype), UncertaintyState(log_vars, opt_state)

  return base.Weighting(init, update)
