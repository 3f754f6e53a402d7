"""GradDrop: keep, per coordinate, only the gradients of one random sign."""

from __future__ import annotations

from typing import Sequence, Union

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.base import Aggregator, EmptyState
from mtl_jax.validators import hyperparameter, in_range


def graddrop(leak: Union[float, Sequence[float]] = 0.0) -> Aggregator:
  """Gradient sign dropout.

  For every coordinate ``k`` of the shared parameters, the positive sign
  purity

  .. math:: P_k = \\tfrac12\\Big(1 + \\frac{\\sum_t g_{t,k}}
                                        {\\sum_t |g_{t,k}|}\\Big) \\in [0, 1]

  (``1/2`` where every gradient is zero) is the probability of keeping the
  positive components: with ``U_k ~ Uniform[0, 1)`` drawn from ``key``, the
  mask is ``M_{t,k} = [P_k > U_k][g_{t,k} > 0] + [P_k <= U_k][g_{t,k} < 0]``
  and the direction is ``d = sum_t (l_t g_t + (1 - l_t) M_t * g_t)`` with
  leak ``l_t``. With zero leak every coordinate of ``d`` has the sign chosen
  for it and all the kept task gradients agree in sign there.

  The mask is elementwise, so the method needs the full Jacobian: it has no
  ``weights`` and the trainer's Gramian / representation engines refuse it.
  The paper inserts GradDrop at an activation layer (purity from
  batch-summed, sign-corrected gradients); here it acts on the gradients of
  the shared parameters, as in LibMTL-style parameter-level use, with the
  identity as the purity transform.

  Args:
    leak: leak ``l`` in ``[0, 1]``: one float for all tasks or one per task
      (its length must then equal ``T``). ``0`` is pure GradDrop, ``1``
      returns the summed gradient.

  Returns:
    A stateless :class:`~mtl_jax.aggregation.base.Aggregator` without
    ``weights``; ``update`` needs the ``key`` extra.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from mtl_jax import aggregation
    >>> agg = aggregation.get("graddrop")
    >>> grads = jnp.array([[1.0, -2.0], [3.0, -1.0]])  # Pure signs: P = 1, 0.
    >>> d, _ = agg.update(grads, agg.init(2), key=jax.random.key(0))
    >>> d.tolist()
    [4.0, -3.0]

  References:
    Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov, "Just Pick a
    Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout",
    NeurIPS 2020, arXiv:2010.06808.
  """
  if isinstance(leak, (int, float)):
    in_range(float(leak), hyperparameter("leak"), 0.0, 1.0)
    leaks = None
  else:
    leaks = tuple(float(x) for x in leak)
    for x in leaks:
      in_range(x, hyperparameter("leak"), 0.0, 1.0)

  def init(num_tasks: int, params=None) -> EmptyState:
    if leaks is not None and len(leaks) != num_tasks:
      raise ValueError(
          f"Hyperparameter 'leak' has {len(leaks)} values for {num_tasks} "
          "tasks.")
    del params
    return EmptyState()

  def update(grads, state: EmptyState, *, key=None, **extras):
    del extras
    if key is None:
      raise ValueError("graddrop needs the `key` extra (a PRNG key).")
    leaves, treedef = jax.tree.flatten(grads)
    keys = jax.random.split(key, len(leaves))
    out = []
    for leaf, leaf_key in zip(leaves, keys):
      g = leaf.astype(jnp.promote_types(leaf.dtype, jnp.float32))
      t = g.shape[0]
      total = jnp.sum(g, axis=0)
      magnitude = jnp.sum(jnp.abs(g), axis=0)
      nonzero = magnitude > 0
      purity = jnp.where(
          nonzero, 0.5 * (1.0 + total / jnp.where(nonzero, magnitude, 1.0)),
          0.5)
      u = jax.random.uniform(leaf_key, purity.shape, g.dtype)
      mask = jnp.where(purity > u, g > 0, g < 0).astype(g.dtype)
      if leaks is None:
        l = jnp.asarray(leak, g.dtype)
      else:
        if len(leaks) != t:
          raise ValueError(
              f"Hyperparameter 'leak' has {len(leaks)} values for {t} tasks.")
        l = jnp.asarray(leaks, g.dtype).reshape((t,) + (1,) * (g.ndim - 1))
      kept = l * g + (1.0 - l) * mask * g
      out.append(jnp.sum(kept, axis=0).astype(leaf.dtype))
    return jax.tree.unflatten(treedef, out), state

  return Aggregator(init=init, update=update, weights=None)
