"""What every engine shares: its inputs, its result and the weight solves.

An engine is one function, called the same way by the step::

    engine(fns: ModelFns, state: TrainState, batch, method: Method,
           extras: dict(step=..., key=...)) -> EngineOut

``fns`` holds the model's functions and how the batch is split
(:class:`ModelFns`); ``state`` is the step's :class:`TrainState`, of which an
engine reads ``params``, ``rest``, ``weighting_state``, ``aggregation_state``
and, between two solves of a periodic method, ``agg_weights`` and
``gramian``. An engine runs on the whole batch when
``fns.accumulation_steps == 1`` and over micro-batches otherwise
(:mod:`mtl_jax.train.accumulation`), with the same result.

An engine declares what it needs from the method and the model with
:func:`requires`; :func:`mtl_jax.train.engines.resolve` reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

if TYPE_CHECKING:
  from mtl_jax.train.engines import Method
  from mtl_jax.train.state import TrainState

HEAD_GROUPS = ("tasks", "cross")


class ModelFns(NamedTuple):
  """The model's functions for one step, built once (``make_train_step``).

  Attributes:
    forward: ``forward(params, rest, batch) -> (losses [T], (counts [T],
      new_rest))`` (:func:`mtl_jax.train.step.make_forward`).
    encode: ``encode(shared, params, rest, batch) -> (z, rest)``, the model's
      half up to its single shared representation, or None (the model has
      none, or the engine does not use it).
    decode: ``decode(z, heads, params, rest, batch) -> (losses, (counts,
      rest))``, the other half; ``z`` is one copy per task, ``{task: z}``
      (:func:`mtl_jax.train.step.make_encode_decode`). None with ``encode``.
    counts: ``counts(batch) -> [T]`` labelled examples per task, without the
      model (:func:`mtl_jax.train.step.make_counts`); accumulation needs them
      before the first micro-batch.
    accumulation_steps: ``M``, micro-batches per step (1: the whole batch).
  """

  forward: Callable[..., Any]
  encode: Optional[Callable[..., Any]] = None
  decode: Optional[Callable[..., Any]] = None
  counts: Optional[Callable[[dict], jax.Array]] = None
  accumulation_steps: int = 1

  @property
  def accumulated(self) -> bool:
    return self.accumulation_steps > 1


class EngineOut(NamedTuple):
  """What an engine returns; build it by keyword.

  Attributes:
    grads: ``{'shared', 'tasks', 'cross'}`` update direction.
    losses: ``[T]`` per-task mean losses over the global batch.
    counts: ``[T]`` labelled examples per task.
    rest: the new non-parameter state.
    loss_weights: ``[T]`` the weighting's ``w``.
    weighting_state, aggregation_state: the methods' new states.
    agg_weights: ``[T]`` aggregation weights ``a`` of a weighted-sum method,
      or None (the weighted loss sum, or an aggregator without ``weights``).
    gramian: ``[T, T]`` Gramian of the unweighted task gradients of the
      shared group, or None (none computed).
  """

  grads: dict
  losses: jax.Array
  counts: jax.Array
  rest: dict
  loss_weights: jax.Array
  weighting_state: Any
  aggregation_state: Any
  agg_weights: Optional[jax.Array] = None
  gramian: Optional[jax.Array] = None


Engine = Callable[["ModelFns", "TrainState", dict, "Method", dict], EngineOut]


class Requirements(NamedTuple):
  """What an engine needs, checked by :func:`mtl_jax.train.engines.resolve`.

  Attributes:
    task_gradients: it computes per-task gradients (a Gramian), as
      aggregators and Gramian-reading weightings need; False for the
      weighted loss sum.
    aggregator_weights: it only takes aggregators whose update is a weighted
      sum of task gradients (those with ``weights``): it never holds the
      rows of the Jacobian.
    representation: it needs ``fns.encode`` / ``fns.decode`` (a model with a
      single shared representation).
  """

  task_gradients: bool = True
  aggregator_weights: bool = False
  representation: bool = False


def requires(**needs: bool) -> Callable[[Engine], Engine]:
  """Decorator: ``@requires(aggregator_weights=True)`` on an engine function.

  Stores :class:`Requirements` ``(**needs)`` as ``fn.requirements``.
  """
  requirements = Requirements(**needs)

  def mark(fn):
    fn.requirements = requirements
    return fn
  return mark


def requirements_of(fn: Engine) -> Requirements:
  """``fn``'s :class:`Requirements` (the defaults when it declares none)."""
  return getattr(fn, "requirements", Requirements())


def loss_weights(method: Method, losses, state, extras, gram):
  """The weighting's ``(weights [T], state)`` for ``losses`` (no gradient)."""
  kw = dict(extras, key=jax.random.fold_in(extras["key"], 0))
  if "gramian" in method.weighting.needs:
    kw["gramian"] = gram
  weights, state = method.weighting.update(jax.lax.stop_gradient(losses), state, **kw)
  return jax.lax.stop_gradient(weights.astype(losses.dtype)), state


def aggregation_weights(method: Method, weighted_gram, losses, state, extras):
  """Aggregation weights ``a`` (ones without an aggregator)."""
  if method.aggregator is None:
    return jnp.ones_like(losses), state
  kw = dict(extras, key=jax.random.fold_in(extras["key"], 1), losses=losses)
  a, state = method.aggregator.weights(weighted_gram, state, **kw)
  return jax.lax.stop_gradient(a.astype(losses.dtype)), state


def solve_weights(method: Method, losses, gram, wstate, astate, extras):
  """Loss weights ``w`` and aggregation weights ``a`` from a Gramian.

  ``gram`` is the Gramian of the unweighted task gradients; the aggregator
  sees that of the weighted ones, ``diag(w) G diag(w)``.

  Returns:
    ``(w, a, wstate, astate)``.
  """
  w, wstate = loss_weights(method, losses, wstate, extras, gram)
  a, astate = aggregation_weights(method, w[:, None] * gram * w[None, :], losses,
                                  astate, extras)
  return w, a, wstate, astate


def forward_vjp(fns: ModelFns, state: TrainState, batch):
  """One forward on the whole batch: ``(losses, vjp, counts, new_rest)``."""
  losses, vjp, (counts, new_rest) = jax.vjp(
      lambda p: fns.forward(p, state.rest, batch), state.params, has_aux=True)
  return losses, vjp, counts, new_rest


def heads_of(tree: dict) -> dict:
  """The task-specific and cross-task groups of ``tree``."""
  return {g: tree[g] for g in HEAD_GROUPS if g in tree}


def has_leaves(tree) -> bool:
  return bool(jax.tree.leaves(tree))


def scale_rows(w, jac):
  """Row ``t`` of every leaf of ``jac`` times ``w_t``."""
  return jax.tree.map(
      lambda g: g * w.reshape((-1,) + (1,) * (g.ndim - 1)).astype(g.dtype), jac)
