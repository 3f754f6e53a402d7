"""PCGrad: project each task gradient off the gradients it conflicts with."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.base import Aggregator, EmptyState, from_weights, stateless_init
from mtl_jax.aggregation.gramians import normalize_gramian, safe_inverse
from mtl_jax.validators import choice, hyperparameter

REDUCTIONS = ("sum", "mean")


def task_orders(num_tasks: int, key: Optional[jax.Array]) -> jax.Array:
  """``[T, T]`` visiting orders: row ``i`` is a permutation of the tasks.

  Row ``i`` is ``permutation(fold_in(key, i), T)``; with ``key=None`` every
  row is ``0, 1, ..., T-1`` (deterministic). Entry ``i`` in row ``i`` is
  skipped by the callers (a task is never projected onto itself).
  """
  ids = jnp.arange(num_tasks)
  if key is None:
    return jnp.broadcast_to(ids, (num_tasks, num_tasks))
  return jax.vmap(
      lambda i: jax.random.permutation(jax.random.fold_in(key, i), num_tasks)
  )(ids)


def projection_coefficients(gramian: jax.Array, orders: jax.Array) -> jax.Array:
  """PCGrad's projected gradients as coefficients: ``g_i' = sum_k C_ik g_k``.

  For every task ``i``, start from ``c_i = e_i`` and visit the other tasks
  ``j`` in ``orders[i]``. With ``g_i' = c_i J`` the inner product is
  ``g_i' . g_j = (c_i G)_j``; on a conflict (``< 0``) the projection
  ``g_i' <- g_i' - (g_i'.g_j / ||g_j||^2) g_j`` becomes
  ``c_i <- c_i - ((c_i G)_j / G_jj) e_j``. Cost ``O(T^3)`` on the Gramian.

  Args:
    gramian: ``[T, T]`` Gramian of the task gradients.
    orders: ``[T, T]`` int visiting orders (see :func:`task_orders`).

  Returns:
    ``C [T, T]``; scale-free (the same for ``G`` and ``s G``).
  """
  g = gramian.astype(jnp.promote_types(gramian.dtype, jnp.float32))
  g, _ = normalize_gramian(g)
  t = g.shape[0]
  inv_sq_norm = safe_inverse(jnp.diag(g))
  eye = jnp.eye(t, dtype=g.dtype)

  def one_task(i, order):
    def visit(c, j):
      dot = c @ g[:, j]
      conflict = (j != i) & (dot < 0)
      c = c - jnp.where(conflict, dot * inv_sq_norm[j], 0.0) * eye[j]
      return c, None

    c, _ = jax.lax.scan(visit, eye[i], order)
    return c

  return jax.vmap(one_task)(jnp.arange(t), orders)


def pcgrad(reduction: str = "sum") -> Aggregator:
  """Projecting conflicting gradients (gradient surgery).

  For each task ``i`` (in parallel), the other tasks ``j`` are visited in a
  random order; whenever the current ``g_i'`` conflicts with ``g_j``
  (``g_i' . g_j < 0``) its component along ``g_j`` is removed:

  .. math::
     g_i' \\leftarrow g_i' - \\frac{g_i' \\cdot g_j}{\\|g_j\\|^2} g_j,
     \\qquad d = \\sum_i g_i' \\;(\\text{or the mean}).

  Every ``g_i'`` stays a combination ``c_i J`` of the task gradients, so the
  whole procedure runs on the Gramian (:func:`projection_coefficients`) and
  ``d = sum_t w_t g_t`` with ``w = sum_i c_i``: one Jacobian pass,
  ``O(T^2 P + T^3)``. The visiting order of task ``i`` is
  ``permutation(fold_in(key, i), T)``; without a ``key`` extra it is
  ``0, ..., T-1`` for every task (deterministic). For ``T = 2`` the order is
  irrelevant and neither projected gradient conflicts with either original
  gradient.

  Args:
    reduction: ``"sum"`` (the paper) or ``"mean"`` of the projected gradients.

  Returns:
    A stateless :class:`~mtl_jax.aggregation.base.Aggregator` with
    ``weights(gramian, state, *, key=None)``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from mtl_jax import aggregation
    >>> agg = aggregation.get("pcgrad")
    >>> grads = jnp.array([[1.0, 0.0], [-1.0, 1.0]])
    >>> d, _ = agg.update(grads, agg.init(2), key=jax.random.key(0))
    >>> d.tolist()  # (0.5, 0.5) + (0, 1)
    [0.5, 1.5]

  References:
    Yu, Kumar, Gupta, Levine, Hausman & Finn, "Gradient Surgery for
    Multi-Task Learning", NeurIPS 2020, arXiv:2001.06782.
  """
  choice(reduction, hyperparameter("reduction"), REDUCTIONS)

  def weights(gramian: jax.Array, state: EmptyState, *, key=None, **extras):
    del extras
    t = gramian.shape[0]
    coef = projection_coefficients(gramian, task_orders(t, key))
    w = jnp.sum(coef, axis=0)
    if reduction == "mean":
      w = w / t
    return w, state

  return from_weights(stateless_init, weights)
