"""GradVac: move each task gradient towards an adaptive cosine target."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.base import Aggregator, from_weights
from mtl_jax.aggregation.gramians import TINY, normalize_gramian, safe_sqrt, task_norms
from mtl_jax.aggregation.pcgrad import task_orders
from mtl_jax.validators import choice, hyperparameter, in_range

# Targets are capped below 1 in the closed form (its denominator is
# sqrt(1 - target^2)); a cosine of 0.9999 is an angle of 0.8 degrees.
MAX_TARGET = 0.9999


class GradVacState(NamedTuple):
  """EMA of the pairwise cosine similarities.

  Attributes:
    targets: ``[T, T]`` float32; ``targets[i, j]`` is the target cosine
      between the adjusted ``g_i`` and ``g_j`` (diagonal unused).
  """

  targets: jax.Array  # [T, T]


def vaccinate(gramian: jax.Array, targets: jax.Array, orders: jax.Array,
              beta: float) -> tuple[jax.Array, jax.Array]:
  """GradVac's adjusted gradients as coefficients, and the new targets.

  For every task ``i``, ``c_i = e_i`` (``g_i' = c_i J``); the other tasks
  ``j`` are visited in ``orders[i]``. With ``phi = cos(g_i', g_j)`` from the
  Gramian (``||g_i'||^2 = c_i G c_i^T``, ``g_i'.g_j = (c_i G)_j``) and the
  target ``phi_hat = targets[i, j]``, when ``phi < phi_hat``:

  .. math::
     g_i' \\leftarrow g_i' + \\frac{\\|g_i'\\| (\\hat\\phi\\sqrt{1-\\phi^2}
       - \\phi\\sqrt{1-\\hat\\phi^2})}{\\|g_j\\|\\sqrt{1-\\hat\\phi^2}} g_j,

  after which ``cos(g_i', g_j) = phi_hat`` exactly. Then
  ``phi_hat <- (1 - beta) phi_hat + beta phi`` (``phi`` before the update).

  Args:
    gramian: ``[T, T]`` Gramian.
    targets: ``[T, T]`` current targets.
    orders: ``[T, T]`` visiting orders (see
      :func:`mtl_jax.aggregation.pcgrad.task_orders`).
    beta: EMA rate.

  Returns:
    ``(C [T, T], new_targets [T, T])``.
  """
  g = gramian.astype(jnp.promote_types(gramian.dtype, jnp.float32))
  g, _ = normalize_gramian(g)
  t = g.shape[0]
  norms = task_norms(g)
  eye = jnp.eye(t, dtype=g.dtype)
  targets = targets.astype(g.dtype)
  eps = jnp.sqrt(TINY)

  def one_task(i, order, row):
    def visit(carry, j):
      c, row = carry
      norm_i = safe_sqrt(c @ g @ c)
      dot = c @ g[:, j]
      both = (norm_i > eps) & (norms[j] > eps)
      den = jnp.where(both, norm_i * norms[j], 1.0)
      phi = jnp.where(both, jnp.clip(dot / den, -1.0, 1.0), 0.0)
      target = row[j]
      capped = jnp.minimum(target, MAX_TARGET)
      sin_t = jnp.sqrt(1.0 - capped**2)
      coef = (norm_i * (capped * jnp.sqrt(1.0 - phi**2) - phi * sin_t)
              / jnp.where(both, norms[j] * sin_t, 1.0))
      other = j != i
      adjust = other & both & (phi < capped)
      c = c + jnp.where(adjust, coef, 0.0) * eye[j]
      row = row.at[j].set(
          jnp.where(other, (1.0 - beta) * target + beta * phi, target))
      return (c, row), None

    (c, row), _ = jax.lax.scan(visit, (eye[i], row), order)
    return c, row

  return jax.vmap(one_task)(jnp.arange(t), orders, targets)


def gradvac(beta: float = 0.01, reduction: str = "sum") -> Aggregator:
  """Gradient Vaccine: adaptive, similarity-targeted gradient surgery.

  PCGrad only acts on negative cosines. GradVac keeps an EMA target
  ``phi_hat_ij`` of the cosine between tasks ``i`` and ``j`` and, whenever the
  current cosine is below it, adds the multiple of ``g_j`` to ``g_i'`` that
  makes the cosine exactly the target (see :func:`vaccinate`); the visiting
  order of the other tasks is random per task (from ``key``; ``0..T-1``
  without one). The direction is ``sum_i g_i'`` (or the mean). Each
  ``g_i'`` is a combination ``c_i J``, so everything runs on the Gramian and
  ``d = sum_t w_t g_t`` with ``w = sum_i c_i``. Targets start at 0 (then the
  first step is PCGrad's). The paper applies the rule per layer / block of a
  Transformer; here it acts on all the shared parameters at once (apply it
  per block by calling it on sub-trees).

  Args:
    beta: EMA rate of the targets in ``[0, 1]`` (the paper: 1e-2; LibMTL's
      default ``--GradVac_beta`` is 0.5, pass ``beta=0.5`` for it). ``0``
      keeps the initial targets (zero) for ever.
    reduction: ``"sum"`` (the paper) or ``"mean"``.

  Returns:
    An :class:`~mtl_jax.aggregation.base.Aggregator` with state
    :class:`GradVacState` and ``weights(gramian, state, *, key=None)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from mtl_jax import aggregation
    >>> agg = aggregation.get("gradvac", beta=0.5)
    >>> state = agg.init(2)
    >>> d, state = agg.update(jnp.array([[1.0, 0.0], [-1.0, 1.0]]), state)
    >>> d.tolist()  # Targets are 0 at first: PCGrad's direction.
    [0.5, 1.5]

  References:
    Wang, Tsvetkov, Firat & Cao, "Gradient Vaccine: Investigating and
    Improving Multi-task Optimization in Massively Multilingual Models",
    ICLR 2021, arXiv:2010.05874.
  """
  in_range(beta, hyperparameter("beta"), 0.0, 1.0)
  choice(reduction, hyperparameter("reduction"), ("sum", "mean"))

  def init(num_tasks: int, params=None) -> GradVacState:
    del params
    return GradVacState(targets=jnp.zeros((num_tasks, num_tasks), jnp.float32))

  def weights(gramian: jax.Array, state: GradVacState, *, key=None,
              **extras):
    del extras
    t = gramian.shape[0]
    coef, targets = vaccinate(gramian, state.targets, task_orders(t, key),
                              beta)
    w = jnp.sum(coef, axis=0)
    if reduction == "mean":
      w = w / t
    return w, GradVacState(targets=targets.astype(state.targets.dtype))

  return from_weights(init, weights)
