"""Per-task gradient engines: how the step obtains what the method needs.

Every engine takes the forward function of one step and returns the update
direction for each parameter group plus what the methods produced. Let
``L(theta) = [L_1, ..., L_T]`` be the per-task losses, ``w`` the loss weights
(:mod:`mtl_jax.weighting`) and ``J`` the Jacobian of ``w * L`` w.r.t. the
shared parameters.

* ``weighted`` (no aggregator, weighting without ``needs``): one forward, one
  VJP with cotangent ``w``. Exactly the cost of the summed loss.
* ``jacobian``: one forward, then all ``T`` VJPs as one vmapped program (the
  rows of ``J`` for every parameter group at once), the Gramian ``J J^T``, and
  the aggregator on ``J`` (or on the Gramian, if it provides ``weights``).
* ``gramian``: memory-lean; never holds ``J``. Linearises once, forms the
  Gramian column by column (``G e_s = J (J^T e_s)``, one VJP and one JVP per
  task under ``lax.map``), solves for the aggregation weights ``a`` and takes
  one more VJP with cotangent ``a * w``. Only for aggregators with ``weights``.
* ``representation``: for models with one shared representation ``z`` (those
  with ``encode``/``decode``): the Jacobian w.r.t. ``z`` (size ``T x B x D``
  instead of ``T x P``) from ONE VJP through the heads (each task reads its own
  copy of ``z``), its Gramian, the aggregator's weights, then one VJP through
  the trunk. MGDA on this engine is MGDA-UB (Sener & Koltun, 2018).

Task-specific and cross-task groups always get the gradient of
``sum_t w_t L_t``; the aggregator acts on the shared group only.

The functions here run on the whole batch (:data:`WHOLE_BATCH`);
:mod:`mtl_jax.train.accumulation` provides the same engines over
micro-batches, with the same results.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.base import Aggregator, combine, gramian
from mtl_jax.weighting.base import Weighting

ENGINES = ("weighted", "jacobian", "gramian", "representation")
HEAD_GROUPS = ("tasks", "cross")


class Method(NamedTuple):
  """The static description of how a step weights and aggregates.

  Attributes:
    weighting: the loss-weighting method.
    aggregator: the gradient aggregator, or None (weighted loss sum).
    engine: one of ``ENGINES``.
    every: run the engine (per-task gradients, Gramian, aggregation solve)
      only every ``every`` steps; the steps between reuse the last
      aggregation weights and Gramian, at the cost of one VJP.
  """

  weighting: Weighting
  aggregator: Optional[Aggregator]
  engine: str
  every: int = 1

  @property
  def periodic(self) -> bool:
    return self.every > 1


class EngineOut(NamedTuple):
  grads: dict               # {'shared', 'tasks', 'cross'} update direction
  losses: jax.Array         # [T]
  counts: jax.Array         # [T] labelled examples per task
  rest: dict                # new non-parameter state
  loss_weights: jax.Array   # [T]
  agg_weights: Optional[jax.Array]  # [T] or None (not a weighted-sum method)
  gramian: Optional[jax.Array]      # [T, T] of the unweighted task gradients
  weighting_state: Any
  aggregation_state: Any


def resolve(weighting: Weighting, aggregator: Optional[Aggregator], engine: str,
            *, has_representation: bool, every: int = 1) -> Method:
  """Checks the engine suits the methods and the model; picks a default.

  ``engine='auto'`` selects ``weighted`` when nothing needs per-task
  gradients and ``jacobian`` otherwise. With ``every > 1`` a ``weighted``
  run becomes ``jacobian`` every ``every`` steps, which logs the gradient
  cosines at that period for the price of one Jacobian.
  """
  if not isinstance(every, int) or every < 1:
    raise ValueError(f"method.every must be a positive integer, got {every!r}.")
  if every > 1 and aggregator is not None and aggregator.weights is None:
    raise ValueError(
        "method.every > 1 reuses the aggregation weights between solves, but this "
        "aggregator is not a weighted sum of task gradients (it has no `weights`); "
        "use method.every=1.")
  needs_grads = aggregator is not None or "gramian" in weighting.needs
  if engine == "auto":
    engine = "jacobian" if needs_grads else "weighted"
  if engine not in ENGINES:
    raise ValueError(f"Unknown engine {engine!r}; valid: {('auto',) + ENGINES}.")
  if engine == "weighted" and needs_grads and every == 1:
    raise ValueError(
        "engine 'weighted' computes no per-task gradients, but the method needs "
        "them (an aggregator, or a weighting that needs the Gramian); use "
        "'jacobian', 'gramian' or 'representation'.")
  if engine in ("gramian", "representation") and aggregator is not None \
      and aggregator.weights is None:
    raise ValueError(
        f"engine {engine!r} needs an aggregator whose update is a weighted sum of "
        "task gradients (one with `weights`); this aggregator needs the full "
        "Jacobian: use engine 'jacobian'.")
  if engine == "representation" and not has_representation:
    raise ValueError(
        "engine 'representation' needs a model with a single shared "
        "representation (encode/decode methods); this architecture has none: use "
        "'jacobian' or 'gramian'.")
  if every > 1 and engine == "weighted":
    engine = "jacobian"
  return Method(weighting, aggregator, engine, every)


class Gathered(NamedTuple):
  """What the ``jacobian`` engine computes before any method runs."""

  losses: jax.Array  # [T] per-task mean losses
  counts: jax.Array  # [T]
  rest: dict         # new non-parameter state
  jac: dict          # rows of the Jacobian of the losses, every group: [T, *p]


def loss_weights(method: Method, losses, state, extras, gram):
  """The weighting's ``(weights [T], state)`` for ``losses`` (no gradient)."""
  kw = dict(extras, key=jax.random.fold_in(extras["key"], 0))
  if "gramian" in method.weighting.needs:
    kw["gramian"] = gram
  weights, state = method.weighting.update(jax.lax.stop_gradient(losses), state, **kw)
  return jax.lax.stop_gradient(weights.astype(losses.dtype)), state


def _aggregation_weights(method: Method, weighted_gram, losses, state, extras):
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
  a, astate = _aggregation_weights(method, w[:, None] * gram * w[None, :], losses,
                                   astate, extras)
  return w, a, wstate, astate


def _has_leaves(tree) -> bool:
  return bool(jax.tree.leaves(tree))


def _scale_rows(w, jac):
  return jax.tree.map(lambda g: g * w.reshape((-1,) + (1,) * (g.ndim - 1)).astype(g.dtype), jac)


def weighted(forward, params, rest, batch, method, wstate, astate, extras) -> EngineOut:
  losses, vjp, (counts, new_rest) = jax.vjp(
      lambda p: forward(p, rest, batch), params, has_aux=True)
  w, wstate = loss_weights(method, losses, wstate, extras, None)
  (grads,) = vjp(w)
  return EngineOut(grads, losses, counts, new_rest, w, None, None, wstate, astate)


def gather_jacobian(forward, params, rest, batch) -> Gathered:
  """One forward, then all ``T`` VJPs as one vmapped program."""
  losses, vjp, (counts, new_rest) = jax.vjp(
      lambda p: forward(p, rest, batch), params, has_aux=True)
  jac = jax.vmap(lambda c: vjp(c)[0])(jnp.eye(losses.shape[0], dtype=losses.dtype))
  return Gathered(losses, counts, new_rest, jac)


def jacobian(forward, params, rest, batch, method, wstate, astate, extras) -> EngineOut:
  return finish_jacobian(gather_jacobian(forward, params, rest, batch), method,
                         wstate, astate, extras)


def finish_jacobian(gathered: Gathered, method, wstate, astate, extras) -> EngineOut:
  """Gramian, weighting and aggregation from the gathered Jacobian rows."""
  losses, counts, new_rest, jac = gathered
  shared_jac = jac["shared"]
  has_shared = _has_leaves(shared_jac)
  gram = (gramian(shared_jac) if has_shared
          else jnp.zeros((losses.shape[0],) * 2, losses.dtype))
  w, wstate = loss_weights(method, losses, wstate, extras, gram)
  agg = method.aggregator
  a = None
  if not has_shared:
    shared_dir = shared_jac
    a = jnp.ones_like(w) if agg is None or agg.weights is not None else None
  elif agg is None:
    shared_dir = combine(w, shared_jac)
    a = jnp.ones_like(w)
  elif agg.weights is not None:
    a, astate = _aggregation_weights(method, w[:, None] * gram * w[None, :], losses,
                                     astate, extras)
    shared_dir = combine(a * w, shared_jac)
  else:
    kw = dict(extras, key=jax.random.fold_in(extras["key"], 1), losses=losses)
    shared_dir, astate = agg.update(_scale_rows(w, shared_jac), astate, **kw)
  grads = {"shared": shared_dir,
           **{g: combine(w, jac[g]) for g in HEAD_GROUPS if g in jac}}
  return EngineOut(grads, losses, counts, new_rest, w, a, gram, wstate, astate)


def gramian_engine(forward, params, rest, batch, method, wstate, astate,
                   extras) -> EngineOut:
  losses, f_jvp, (counts, new_rest) = jax.linearize(
      lambda p: forward(p, rest, batch), params, has_aux=True)
  f_vjp = jax.linear_transpose(f_jvp, params)

  def gram_column(e):
    v = f_vjp(e)[0]
    v = {g: (sub if g == "shared" else jax.tree.map(jnp.zeros_like, sub))
         for g, sub in v.items()}
    return f_jvp(v)

  eye = jnp.eye(losses.shape[0], dtype=losses.dtype)
  gram = jax.lax.map(gram_column, eye)
  gram = 0.5 * (gram + gram.T)
  w, a, wstate, astate = solve_weights(method, losses, gram, wstate, astate, extras)
  shared_dir = f_vjp(a * w)[0]["shared"]
  heads = f_vjp(w)[0]
  grads = {"shared": shared_dir, **{g: heads[g] for g in HEAD_GROUPS if g in heads}}
  return EngineOut(grads, losses, counts, new_rest, w, a, gram, wstate, astate)


def representation(encode, decode, params, rest, batch, method, wstate, astate,
                   extras) -> EngineOut:
  heads = {g: params[g] for g in HEAD_GROUPS if g in params}
  z, vjp_encode, new_rest = jax.vjp(
      lambda s: encode(s, params, rest, batch), params["shared"], has_aux=True)
  # One copy of z per task: task t's loss depends on its copy only (the
  # encode/decode contract), so a single VJP of the summed losses yields every
  # row of the Jacobian w.r.t. z, instead of T VJPs through all the heads.
  names = sorted(params["tasks"])
  losses, vjp_decode, (counts, new_rest) = jax.vjp(
      lambda zs, h: decode(zs, h, params, new_rest, batch),
      {name: z for name in names}, heads, has_aux=True)
  dz = vjp_decode(jnp.ones_like(losses))[0]
  jac_z = jnp.stack([dz[n] for n in names])
  gram = gramian(jac_z)
  w, a, wstate, astate = solve_weights(method, losses, gram, wstate, astate, extras)
  (shared_dir,) = vjp_encode(combine(a * w, jac_z))
  grads = {"shared": shared_dir, **vjp_decode(w)[1]}
  return EngineOut(grads, losses, counts, new_rest, w, a, gram, wstate, astate)


FULL_FORWARD_ENGINES: dict[str, Callable[..., EngineOut]] = {
    "weighted": weighted,
    "jacobian": jacobian,
    "gramian": gramian_engine,
}


def reuse(forward, params, rest, batch, method, wstate, astate, extras, agg_weights,
          gram) -> EngineOut:
  """The step between two solves: one forward and the weighted VJPs.

  Uses the aggregation weights ``agg_weights`` and Gramian ``gram`` of the
  last solve: the shared group gets ``grad sum_t a_t w_t L_t`` and the other
  groups ``grad sum_t w_t L_t``.
  """
  losses, vjp, (counts, new_rest) = jax.vjp(
      lambda p: forward(p, rest, batch), params, has_aux=True)
  w, wstate = loss_weights(method, losses, wstate, extras, gram)
  shared = vjp(agg_weights * w)[0]["shared"]
  heads = vjp(w)[0]
  grads = {"shared": shared, **{g: heads[g] for g in HEAD_GROUPS if g in heads}}
  return EngineOut(grads, losses, counts, new_rest, w, agg_weights, gram, wstate, astate)


class EngineKit(NamedTuple):
  """One implementation of the engines (whole batch, or accumulated).

  Attributes:
    full_forward: ``{engine: fn(forward, params, rest, batch, method, wstate,
      astate, extras) -> EngineOut}`` for the engines on the full forward.
    representation: ``fn(encode, decode, params, ...) -> EngineOut``.
    reuse: the periodic step between solves (see :func:`reuse`).
    gather_jacobian: ``fn(forward, params, rest, batch) -> Gathered``.
  """

  full_forward: dict
  representation: Callable[..., EngineOut]
  reuse: Callable[..., EngineOut]
  gather_jacobian: Callable[..., Gathered]


WHOLE_BATCH = EngineKit(FULL_FORWARD_ENGINES, representation, reuse, gather_jacobian)
