"""Smooth Tchebycheff scalarisation (STCH)."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from mtl_jax.validators import above, hyperparameter, non_negative_int, positive_int, vector
from mtl_jax.weighting import base


class STCHState(NamedTuple):
  """State of :func:`stch`."""

  loss_sum: jax.Array  # [T] sum of the losses seen during the warm-up
  count: jax.Array  # [] int32, number of updates so far


def stch(
    mu: float = 1.0,
    preference: Sequence[float] | None = None,
    ideal_point: Sequence[float] | None = None,
    *,
    log_losses: bool = True,
    warmup_steps: int = 0,
    eps: float = base.LOSS_EPS,
) -> base.Weighting:
  """Smooth Tchebycheff scalarisation: a smooth version of min-max.

  The Tchebycheff scalarisation ``max_t lambda_t (f_t - z*_t)`` only optimises
  the worst task; STCH replaces the max by its smooth log-sum-exp bound::

    total = K mu log sum_t exp(lambda_t (f_t - z*_t) / mu),

  which tends to ``K max_t lambda_t (f_t - z*_t)`` as ``mu -> 0`` and to
  ``sum_t lambda_t (f_t - z*_t)`` plus a constant as ``mu -> inf``. As in the
  authors' MTL code the objectives are the log of the nadir-normalised losses,
  ``f_t = log(L_t + eps) - log(n_t + eps)`` (``log_losses=False`` uses
  ``f_t = L_t / (n_t + eps)``), and the result is multiplied by ``K``. This
  method returns the gradient-equivalent weights::

    p = softmax(lambda (f - z*) / mu)
    w_t = K p_t lambda_t df_t/dL_t,   df_t/dL_t = 1 / (L_t + eps)  (log)
                                                 1 / (n_t + eps)  (linear)

  so ``sum_t w_t grad L_t`` is the gradient of ``total``. With the log transform
  and ``lambda = 1`` the weights on ``log L`` sum to ``K``.

  The nadir ``n`` normalises each loss by its typical value. The reference
  code trains with the sum of log losses for a few warm-up epochs and takes
  ``n`` as the mean loss of the last one. Here, during the first
  ``warmup_steps`` updates the weights are those of ``sum_t f_t`` with
  ``n = 1`` (``1 / (L_t + eps)``, or 1 with ``log_losses=False``) and ``n`` is
  the mean loss over those updates; with ``warmup_steps=0`` (default) ``n = 1``.

  Args:
    mu: smoothing ``mu > 0``; the reference uses 1 (with log losses).
    preference: ``[T]`` positive preference ``lambda``; default all ones (the
      reference code's choice). The paper's ``lambda`` lies on the simplex;
      ``lambda = K lambda_paper`` with ``mu = K mu_paper`` gives the paper's
      update direction (up to a constant factor).
    ideal_point: ``[T]`` finite ideal point ``z*`` in the space of ``f``;
      default 0.
    log_losses: use ``f = log(L / n)`` (True, the reference) or ``f = L / n``.
    warmup_steps: number of warm-up updates that estimate the nadir (>= 0).
    eps: added to the losses and nadir in logs and divisions (> 0).

  Returns:
    A :class:`~mtl_jax.weighting.base.Weighting` with state :class:`STCHState`.

  Raises:
    ValueError: for ``mu <= 0``, a non-positive preference, a non-finite ideal
      point, a negative ``warmup_steps``; ``init`` raises if the preference or
      ideal point length differs from the number of tasks.

  Examples:
    >>> import jax.numpy as jnp
    >>> method = stch(mu=1.0)
    >>> state = method.init(2)
    >>> # f = log L = [0, log 3]; p = softmax(f) = [1/4, 3/4]; w = 2 p / L
    >>> weights, state = method.update(jnp.array([1.0, 3.0]), state)
    >>> [round(w, 4) for w in weights.tolist()]
    [0.5, 0.5]

  References:
    X. Lin, X. Zhang, Z. Yang, F. Liu, Z. Wang, Q. Zhang. "Smooth Tchebycheff
    Scalarization for Multi-Objective Optimization". ICML 2024.
    arXiv:2402.19078.
  """
  above(mu, hyperparameter("mu"), 0)
  above(eps, hyperparameter("eps"), 0)
  non_negative_int(warmup_steps, hyperparameter("warmup_steps"))
  pref = (None if preference is None else
          vector(preference, hyperparameter("preference"), positive=True))
  ideal = (None if ideal_point is None else
           vector(ideal_point, hyperparameter("ideal_point")))

  def _vectors(num_tasks: int, dtype) -> tuple[jax.Array, jax.Array]:
    lam = jnp.ones((num_tasks,), dtype) if pref is None else pref
    z = jnp.zeros((num_tasks,), dtype) if ideal is None else ideal
    for name, value in (("preference", lam), ("ideal_point", z)):
      if jnp.shape(value) != (num_tasks,):
        raise ValueError(
            f"Hyperparameter {name!r} has {jnp.size(value)} entries but there "
            f"are {num_tasks} tasks.")
    return jnp.asarray(lam, dtype), jnp.asarray(z, dtype)

  def init(num_tasks: int) -> STCHState:
    num_tasks = positive_int(num_tasks, "num_tasks")
    _vectors(num_tasks, jnp.float32)
    return STCHState(jnp.zeros((num_tasks,), jnp.float32),
                     jnp.zeros((), jnp.int32))

  def update(losses: jax.Array, state: STCHState, **extras):
    del extras
    num_tasks = state.loss_sum.shape[0]
    losses = base.as_losses(losses, num_tasks)
    dtype = state.loss_sum.dtype
    lam, z = _vectors(num_tasks, dtype)
    current = jnp.maximum(losses.astype(dtype), 0.0)

    in_warmup = state.count < warmup_steps
    loss_sum = jnp.where(in_warmup, state.loss_sum + current, state.loss_sum)
    if warmup_steps:
      nadir = jnp.where(in_warmup, 1.0, loss_sum / warmup_steps)
    else:
      nadir = jnp.ones_like(current)

    if log_losses:
      f = base.safe_log(current, eps) - jnp.log(nadir + eps)
      df = 1.0 / (current + eps)
    else:
      f = current / (nadir + eps)
      df = 1.0 / (nadir + eps)
    p = jax.nn.softmax(lam * (f - z) / mu)
    weights = jnp.where(in_warmup, df, num_tasks * p * lam * df)
    return weights.astype(losses.dtype), STCHState(loss_sum, state.count + 1)

  return base.Weighting(init, update)
