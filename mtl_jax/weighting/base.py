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
  (GradNorm, DB-MTL, ExcessMTL). Its helpers (``task_norms``: the per-task
  gradient norms ``sqrt(diag(G))``, ``cosines``) are in
  :mod:`mtl_jax.aggregation.gramians`.

``losses`` is a float ``[T]`` vector in the canonical task order (task names
sorted). Weights are a float ``[T]`` vector; the trainer minimises
``sum(weights * losses)`` with ``weights`` under ``stop_gradient``.
Methods that learn parameters (uncertainty weighting, IMTL-L, FAMO, ...) keep
them in their state and update them inside ``update`` in closed form or with a
fixed inner step; they never need the trainer's optimizer.

The fields of :class:`Weighting` are typed with the protocols
:class:`WeightingInit` and :class:`WeightingUpdate`, as optax types
``GradientTransformation``'s. A method without state whose weights depend on
the current step only is ``stateless(weights)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import optax

from mtl_jax.contracts import EmptyState, State
from mtl_jax.validators import above, hyperparameter, positive_int


class WeightingInit(Protocol):
  """``init(num_tasks) -> state``: the state for ``num_tasks`` tasks.

  Raises ``ValueError`` unless ``num_tasks`` is a positive integer.
  """

  def __call__(self, num_tasks: int) -> State:
    ...


class WeightingUpdate(Protocol):
  """``update(losses, state, *, step, key, **extras) -> (weights, state)``.

  ``losses`` and ``weights`` are float ``[T]`` vectors in task order. Extras
  are keyword-only (``step``, ``key``, ``gramian``, see the module
  docstring); an update must accept and ignore the ones it does not use.
  """

  def __call__(self, losses: jax.Array, state: State, **extras: Any
               ) -> tuple[jax.Array, State]:
    ...


class Weighting(NamedTuple):
  """A loss-weighting method as a pair of pure functions.

  Attributes:
    init: :class:`WeightingInit`, ``init(num_tasks) -> state``.
    update: :class:`WeightingUpdate`,
      ``update(losses, state, *, step, key, **extras) -> (weights, state)``.
    needs: extras the trainer must compute for ``update`` (e.g. ``"gramian"``).
  """

  init: WeightingInit
  update: WeightingUpdate
  needs: frozenset[str] = frozenset()


def stateless_init(num_tasks: int) -> EmptyState:
  """The ``init`` of a method without state (checks ``num_tasks``)."""
  positive_int(num_tasks, "num_tasks")
  return EmptyState()


class StatelessWeights(Protocol):
  """``weights(losses, **extras) -> weights``: losses ``[T]`` (floats, checked)."""

  def __call__(self, losses: jax.Array, **extras: Any) -> jax.Array:
    ...


def stateless(weights: StatelessWeights) -> Weighting:
  """A :class:`Weighting` without state whose weights depend on this step only.

  Args:
    weights: ``weights(losses, **extras) -> [T]``, given the losses as a
      checked float vector (:func:`as_losses`) and every extra.

  Returns:
    A :class:`Weighting` with :func:`stateless_init` and an ``update`` that
    returns ``(weights(losses, **extras), state)``.
  """
  def update(losses: jax.Array, state: EmptyState, **extras):
    return weights(as_losses(losses), **extras), state

  return Weighting(stateless_init, update)


def check_weights_length(weights: jax.Array, num_tasks: int) -> None:
  """Raises if a weight vector does not have one entry per task."""
  if jnp.shape(weights) != (num_tasks,):
    raise ValueError(
        f"Expected {num_tasks} task weights (one per task), got a weights "
        f"vector of shape {jnp.shape(weights)} (length "
        f"{jnp.size(weights)}).")


# ---------------------------------------------------------------------------
# Helpers shared by several methods.
# ---------------------------------------------------------------------------

LOSS_EPS = 1e-8
"""Added to losses before a log or a division, so a loss of 0 stays finite."""


def as_losses(losses: jax.Array, num_tasks: int | None = None) -> jax.Array:
  """Checks that ``losses`` is a ``[T]`` vector and returns it as floats.

  Args:
    losses: per-task losses.
    num_tasks: the number of tasks the method's state was built for, if any.

  Returns:
    ``losses`` as a floating-point ``[T]`` array.
  """
  losses = jnp.asarray(losses)
  if not jnp.issubdtype(losses.dtype, jnp.floating):
    losses = losses.astype(jnp.float32)
  if losses.ndim != 1:
    raise ValueError(
        f"losses must be a [T] vector (one loss per task), got shape "
        f"{losses.shape}.")
  if num_tasks is not None and losses.shape[0] != num_tasks:
    raise ValueError(
        f"The state was built for {num_tasks} tasks but got {losses.shape[0]} "
        "losses.")
  return losses


def as_gramian(gramian: jax.Array | None, num_tasks: int,
               method: str) -> jax.Array:
  """Checks the ``gramian`` extra of a method that lists it in ``needs``."""
  if gramian is None:
    raise ValueError(
        f"Weighting method {method!r} needs the Gramian of the per-task "
        "gradients: call update(..., gramian=G) with G of shape [T, T].")
  gramian = jnp.asarray(gramian)
  if gramian.shape != (num_tasks, num_tasks):
    raise ValueError(
        f"gramian must have shape ({num_tasks}, {num_tasks}) for {num_tasks} "
        f"tasks, got {gramian.shape}.")
  return gramian


def safe_log(losses: jax.Array, eps: float = LOSS_EPS) -> jax.Array:
  """``log(max(losses, 0) + eps)``: finite for losses of exactly 0."""
  return jnp.log(jnp.maximum(losses, 0.0) + eps)


def inner_optimizer(
    learning_rate: float,
    optimizer: optax.GradientTransformation | None = None,
) -> optax.GradientTransformation:
  """The optimizer a method uses for its own learned parameters.

  Args:
    learning_rate: step size of the default ``optax.adam``; must be > 0.
    optimizer: an optax transformation to use instead of Adam.

  Returns:
    ``optimizer`` if given, else ``optax.adam(learning_rate)``.
  """
  if optimizer is not None:
    return optimizer
  above(learning_rate, hyperparameter("learning_rate"), 0)
  return optax.adam(learning_rate)
