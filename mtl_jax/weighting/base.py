"""The contract every loss-weighting method follows.

A weighting method maps the per-task losses of one step to task weights, in
the style of ``optax.GradientTransformation``: a factory takes the
hyperparameters and returns a :class:`Weighting` of pure, jittable functions::

  method = mtl_jax.weighting.get("dwa", temperature=2.0)
  state = method.init(num_tasks)
  weights, state = method.update(losses, state, step=step, key=key)
  total = jnp.sum(weights * losses)

``update`` receives keyword-only extras and must ignore the ones it does not
use (declare ``**extras``). The trainer passes:

* ``step``: int32 scalar, the global step (0 at the first update).
* ``key``: a PRNG key derived for this step (``fold_in(seed_key, step)``).
* ``gramian``: ``[T, T]`` Gramian ``G = J J^T`` of the per-task gradients of the
  shared parameters, only when the method lists ``"gramian"`` in ``needs``
  (GradNorm, IMTL-L variants, ...). ``sqrt(diag(G))`` are the per-task
  gradient norms.

``losses`` is a float ``[T]`` vector in the canonical task order (task names
sorted). Weights are a float ``[T]`` vector; the trainer minimises
``sum(weights * losses)`` with ``weights`` under ``stop_gradient``.
Methods that learn parameters (uncertainty weighting, IMTL-L, FAMO, ...) keep
them in their state and update them inside ``update`` in closed form or with a
fixed inner step; they never need the trainer's optimizer.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class Weighting(NamedTuple):
  """A loss-weighting method as a pair of pure functions.

  Attributes:
    init: ``init(num_tasks) -> state``.
    update: ``update(losses, state, *, step, key, **extras) -> (weights, state)``.
    needs: extras the trainer must compute for ``update`` (e.g. ``"gramian"``).
  """

  init: Callable[[int], Any]
  update: Callable[..., tuple[jax.Array, Any]]
  needs: frozenset[str] = frozenset()


class EmptyState(NamedTuple):
  """State of a stateless method."""


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
  """Raises ``ValueError`` naming ``name`` if ``value`` is out of its domain."""
  ok = value >= 0 if allow_zero else value > 0
  if not ok:
    bound = ">= 0" if allow_zero else "> 0"
    raise ValueError(f"Hyperparameter {name!r} must be {bound}, got {value!r}.")
  return value


def check_in_range(name: str, value: float, low: float, high: float) -> float:
  """Raises ``ValueError`` naming ``name`` unless ``low <= value <= high``."""
  if not low <= value <= high:
    raise ValueError(
        f"Hyperparameter {name!r} must be in [{low}, {high}], got {value!r}.")
  return value


def check_weights_length(weights: jax.Array, num_tasks: int) -> None:
  """Raises if a weight vector does not have one entry per task."""
  if jnp.shape(weights) != (num_tasks,):
    raise ValueError(
        f"Expected {num_tasks} task weights (one per task), got a weights "
        f"vector of shape {jnp.shape(weights)} (length "
        f"{jnp.size(weights)}).")
