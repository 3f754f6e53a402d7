"""MoCo: multi-objective gradient correction with tracked task gradients."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregation._solvers import project_simplex
from mtl_jax.aggregation.base import (Aggregator, all_finite, keep_if, num_tasks_of,
                                      task_buffer)
from mtl_jax.aggregation.gramians import gramian
from mtl_jax.validators import above, at_least, choice, hyperparameter, in_range

_HIGHEST = jax.lax.Precision.HIGHEST


class MoCoState(NamedTuple):
  """State of :func:`moco`."""
  y: Any            # pytree of [T, *p]: tracked per-task gradients
  lam: jax.Array    # [T] task weights on the probability simplex
  count: jax.Array  # int32 scalar: number of updates done so far


def moco(
    beta: float = 0.5,
    beta_sigma: float = 0.5,
    gamma: float = 0.1,
    gamma_sigma: float = 0.5,
    rho: float = 0.0,
    normalize_by_loss: bool = False,
    lambda_update: str = "project",
) -> Aggregator:
  r"""MoCo: stochastic multi-objective gradient correction.

  Stochastic MGDA is biased because the min-norm weights are computed from
  noisy gradients. MoCo tracks each task's gradient with a moving estimate
  ``y_t`` and runs one projected-gradient step on the MGDA weights per
  update (step ``k = 1, 2, ...``):

  .. math::
    y_t &\leftarrow y_t - \beta_k (y_t - g_t), \\
    \lambda &\leftarrow \Pi_{\Delta}\big(\lambda
        - \gamma_k (Y Y^\top + \rho I) \lambda\big), \\
    d &= Y^\top \lambda = \textstyle\sum_t \lambda_t y_t ,

  with ``beta_k = beta / k^beta_sigma``, ``gamma_k = gamma / k^gamma_sigma``
  and ``Pi_Delta`` the Euclidean projection onto the simplex. The trackers
  start at zero and the weights at ``1/T`` (as the authors' code).

  ``weights`` is ``None``: the direction combines the tracked ``y``, not the
  current gradients, so it cannot be computed from the current Gramian, and
  the trackers are per-parameter state. MoCo therefore needs the full
  Jacobian engine, and ``init`` needs ``params`` (a pytree shaped like one
  task's gradient) to allocate the ``[T, *p]`` trackers.

  The projection ``Pi_Delta`` is the paper's update (Fernando et al., 2023,
  Algorithm 1 and the analysis, which use the Euclidean projection onto the
  simplex). LibMTL's ``MoCo`` (and the code derived from it) applies a
  softmax instead, ``lambda <- softmax(lambda - gamma_k (Y Y^T + rho I)
  lambda)``, which is not a projection: it never reaches a face of the
  simplex and, for small steps, pulls ``lambda`` towards uniform.
  ``lambda_update="softmax"`` gives that variant.

  A step with a non-finite gradient (or loss, with ``normalize_by_loss``)
  returns a non-finite direction and leaves the state unchanged
  (:func:`~mtl_jax.aggregation.base.keep_if`): one bad step does not poison
  the trackers.

  ``normalize_by_loss=True`` replaces each ``g_t`` by ``g_t / ||g_t|| *
  loss_t`` before tracking, the gradient normalisation used by LibMTL's
  implementation; it needs the ``losses`` extra.

  Args:
    beta: tracking step size, in ``(0, 1]``.
    beta_sigma: decay exponent of the tracking step, ``>= 0``.
    gamma: weight step size, ``> 0``.
    gamma_sigma: decay exponent of the weight step, ``>= 0``.
    rho: ridge of the weight subproblem, ``>= 0``.
    normalize_by_loss: rescale gradients to norm ``loss_t`` first.
    lambda_update: ``"project"`` (the paper: Euclidean projection onto the
      simplex) or ``"softmax"`` (LibMTL's implementation).

  Returns:
    An :class:`~mtl_jax.aggregation.base.Aggregator` with ``weights=None``;
    its state is a :class:`MoCoState`.

  Examples:
    >>> params = {"w": jnp.zeros(3)}
    >>> method = moco()
    >>> state = method.init(2, params)
    >>> grads = {"w": jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])}
    >>> direction, state = method.update(grads, state)

  References:
    Fernando, Shen, Liu, Chaudhury, Murugesan & Chen, "Mitigating Gradient
    Bias in Multi-objective Learning: A Provably Convergent Approach",
    ICLR 2023, arXiv:2210.12624.
  """
  in_range(beta, hyperparameter("beta"), 0.0, 1.0, closed="right")
  at_least(beta_sigma, hyperparameter("beta_sigma"), 0)
  above(gamma, hyperparameter("gamma"), 0)
  at_least(gamma_sigma, hyperparameter("gamma_sigma"), 0)
  at_least(rho, hyperparameter("rho"), 0)
  choice(lambda_update, hyperparameter("lambda_update"),
         ("project", "softmax"))
  to_simplex = project_simplex if lambda_update == "project" else jax.nn.softmax

  def init(num_tasks, params=None):
    y = task_buffer(num_tasks, params, method="moco",
                    keeps="tracks every task's gradient")
    return MoCoState(y=y, lam=jnp.full((num_tasks,), 1.0 / num_tasks,
                                       jnp.float32),
                     count=jnp.zeros((), jnp.int32))

  def update(grads, state, *, losses=None, **extras):
    del extras
    t = num_tasks_of(grads)
    if normalize_by_loss:
      if losses is None:
        raise ValueError("moco(normalize_by_loss=True) needs the 'losses' "
                         "extra.")
      norms = jnp.sqrt(jnp.diag(gramian(grads)))
      factor = jnp.asarray(losses, jnp.float32) / jnp.maximum(norms, 1e-30)
      grads = jax.tree.map(
          lambda g: g * factor.reshape((t,) + (1,) * (g.ndim - 1)).astype(
              g.dtype), grads)
    k = (state.count + 1).astype(jnp.float32)
    beta_k = beta / k ** beta_sigma
    gamma_k = gamma / k ** gamma_sigma
    y = jax.tree.map(lambda y, g: y - beta_k * (y - g.astype(y.dtype)),
                     state.y, grads)
    yy = gramian(y) + rho * jnp.eye(t, dtype=jnp.float32)
    lam = to_simplex(
        state.lam - gamma_k * jnp.dot(yy, state.lam, precision=_HIGHEST))
    direction = jax.tree.map(
        lambda yl, g: jnp.tensordot(lam.astype(yl.dtype), yl, axes=1,
                                    precision=_HIGHEST).astype(g.dtype),
        y, grads)
    ok = all_finite(grads, losses if normalize_by_loss else None)
    new_state = MoCoState(y=y, lam=lam, count=state.count + 1)
    return direction, keep_if(ok, new_state, state)

  return Aggregator(init=init, update=update, weights=None)
