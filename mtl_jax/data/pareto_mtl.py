"""The synthetic two-objective problem of Pareto MTL (a function, not data).

With ``x`` in R^n (n = 20, starts drawn from U(-0.5, 0.5)^n)::

  f1(x) = 1 - exp(-sum_i (x_i - 1/sqrt(n))^2)
  f2(x) = 1 - exp(-sum_i (x_i + 1/sqrt(n))^2)

The Pareto set is the segment ``x = (t, ..., t)``, ``t`` in
``[-1/sqrt(n), 1/sqrt(n)]``, and its front is concave: there a weighted sum of
the losses only ever reaches the two ends.

Example::

  x0 = sample_starts(jax.random.key(0), 5)        # [5, 20]
  front = pareto_front(100)                        # [100, 2]

References:
  Lin, Zhen, Li, Zhang, Kwong. Pareto Multi-Task Learning. NeurIPS 2019.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DIM = 20


def pareto_losses(x: jax.Array) -> jax.Array:
  """The two losses ``[f1, f2]`` at ``x`` ``[n]``."""
  shift = 1.0 / jnp.sqrt(x.shape[-1])
  f1 = 1.0 - jnp.exp(-jnp.sum((x - shift) ** 2, axis=-1))
  f2 = 1.0 - jnp.exp(-jnp.sum((x + shift) ** 2, axis=-1))
  return jnp.stack([f1, f2], axis=-1)


def pareto_set(num_points: int, dim: int = DIM) -> jax.Array:
  """``num_points`` Pareto-optimal ``x = (t, ..., t)`` ``[num_points, dim]``."""
  t = jnp.linspace(-1.0, 1.0, num_points) / jnp.sqrt(dim)
  return jnp.broadcast_to(t[:, None], (num_points, dim))


def pareto_front(num_points: int, dim: int = DIM) -> jax.Array:
  """The losses ``[num_points, 2]`` along the Pareto set (f1 falls, f2 rises)."""
  return pareto_losses(pareto_set(num_points, dim))


def sample_starts(key: jax.Array, num: int, dim: int = DIM) -> jax.Array:
  """``num`` starting points from U(-0.5, 0.5)^dim, ``[num, dim]``."""
  return jax.random.uniform(key, (num, dim), minval=-0.5, maxval=0.5)
