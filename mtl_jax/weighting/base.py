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
import numpy as np
import optax


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


# ---------------------------------------------------------------------------
# Helpers shared by several methods.
# ---------------------------------------------------------------------------

LOSS_EPS = 1e-8
"""Added to losses before a log or a division, so a loss of 0 stays finite."""


def check_num_tasks(num_tasks: int) -> int:
  """Raises ``ValueError`` unless ``num_tasks`` is an integer >= 1."""
  if isinstance(num_tasks, bool) or not isinstance(num_tasks,
                                                    (int, np.integer)):
    raise ValueError(f"num_tasks must be an int, got {num_tasks!r}.")
  if num_tasks < 1:
    raise ValueError(f"num_tasks must be >= 1, got {num_tasks}.")
  return int(num_tasks)


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


def grad_norms(gramian: jax.Array) -> jax.Array:
  """Per-task gradient norms ``sqrt(G_tt)``, clamped at 0 against round-off."""
  return jnp.sqrt(jnp.maximum(jnp.diagonal(gramian), 0.0))


def safe_log(losses: jax.Array, eps: float = LOSS_EPS) -> jax.Array:
  """``log(max(losses, 0) + eps)``: finite for losses of exactly 0."""
  return jnp.log(jnp.maximum(losses, 0.0) + eps)


def as_hparam_vector(name: str, values: Any, *, nonnegative: bool = False,
                     positive: bool = False) -> np.ndarray:
  """Validates a vector hyperparameter (fixed weights, preferences, ...).

  Raises ``ValueError`` naming ``name`` unless ``values`` is a finite 1-D
  vector (with non-negative / positive entries when asked).
  """
  array = np.asarray(values, dtype=np.float64)
  if array.ndim != 1 or array.size == 0:
    raise ValueError(
        f"Hyperparameter {name!r} must be a non-empty 1-D vector, got shape "
        f"{array.shape}.")
  if not np.all(np.isfinite(array)):
    raise ValueError(f"Hyperparameter {name!r} must be finite, got {values!r}.")
  if positive and not np.all(array > 0):
    raise ValueError(
        f"Hyperparameter {name!r} must have entries > 0, got {values!r}.")
  if nonnegative and not np.all(array >= 0):
    raise ValueError(
        f"Hyperparameter {name!r} must have entries >= 0, got {values!r}.")
  return array


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
  check_positive("learning_rate", learning_rate)
  return optax.adam(learning_rate)
