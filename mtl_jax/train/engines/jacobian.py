"""``jacobian``: the rows of the Jacobian of every parameter group.

One forward, then all ``T`` VJPs as one vmapped program (the rows of ``J``
for every parameter group at once), the Gramian ``J J^T`` of the shared
group, and the aggregator on ``J`` (or on the Gramian, if it provides
``weights``). Memory: ``T x P``. The only engine for aggregators without
``weights`` (PCGrad, GradDrop, ...).

Over micro-batches: one pass accumulating loss sums and the rows of the
Jacobian (every parameter group, ``T`` VJPs per micro-batch, each row the
gradient of the *global* mean loss ``S_t / N_t``), then the same method
logic (:func:`finish`). Memory: ``T x P`` (as without accumulation) plus one
micro-batch.

:func:`gather` alone is the gradient-cosine probe of runs whose step
computes no per-task gradients (:func:`mtl_jax.train.step.make_gramian_probe`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.base import combine, gramian
from mtl_jax.train import accumulation
from mtl_jax.train.engines.base import (HEAD_GROUPS, EngineOut, aggregation_weights,
                                        has_leaves, loss_weights, requires,
                                        scale_rows)


class Gathered(NamedTuple):
  """What the ``jacobian`` engine computes before any method runs."""

  losses: jax.Array  # [T] per-task mean losses
  counts: jax.Array  # [T]
  rest: dict         # new non-parameter state
  jac: dict          # rows of the Jacobian of the losses, every group: [T, *p]


@requires()
def jacobian(fns, state, batch, method, extras) -> EngineOut:
  return finish(gather(fns, state.params, state.rest, batch), method,
                state.weighting_state, state.aggregation_state, extras)


def gather(fns, params, rest, batch) -> Gathered:
  """Losses, counts, new state and the Jacobian rows of every group."""
  if fns.accumulated:
    return _gather_accumulated(fns, params, rest, batch)
  losses, vjp, (counts, new_rest) = jax.vjp(
      lambda p: fns.forward(p, rest, batch), params, has_aux=True)
  jac = jax.vmap(lambda c: vjp(c)[0])(jnp.eye(losses.shape[0], dtype=losses.dtype))
  return Gathered(losses, counts, new_rest, jac)


def _gather_accumulated(fns, params, rest, batch) -> Gathered:
  """Loss sums and Jacobian rows of every group, accumulated in one pass."""
  parts = accumulation.split(fns, batch)
  f = accumulation.sums(fns.forward)
  scaled_eye = jnp.diag(parts.inv)  # row t: d(S_t / N_t), the global mean's row

  def body(carry, batch):
    jac, total, rest = carry
    s, vjp, (_, new_rest) = jax.vjp(lambda p: f(p, rest, batch), params, has_aux=True)
    rows = jax.vmap(lambda c: vjp(c)[0])(scaled_eye)
    return accumulation.add(jac, rows), total + s, new_rest
  num_tasks = parts.counts.shape[0]
  jac0 = jax.tree.map(lambda p: jnp.zeros((num_tasks,) + p.shape, p.dtype), params)
  sums0 = accumulation.sum_zeros(f, params, rest, accumulation.first(parts.batches))
  init = (jac0, sums0, rest)
  jac, total, new_rest = accumulation.scan(body, init, parts.batches)
  return Gathered(total * parts.inv, parts.counts, new_rest, jac)


def finish(gathered: Gathered, method, wstate, astate, extras) -> EngineOut:
  """Gramian, weighting and aggregation from the gathered Jacobian rows."""
  losses, counts, new_rest, jac = gathered
  shared_jac = jac["shared"]
  has_shared = has_leaves(shared_jac)
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
    a, astate = aggregation_weights(method, w[:, None] * gram * w[None, :], losses,
                                    astate, extras)
    shared_dir = combine(a * w, shared_jac)
  else:
    kw = dict(extras, key=jax.random.fold_in(extras["key"], 1), losses=losses)
    shared_dir, astate = agg.update(scale_rows(w, shared_jac), astate, **kw)
  grads = {"shared": shared_dir,
           **{g: combine(w, jac[g]) for g in HEAD_GROUPS if g in jac}}
  return EngineOut(grads=grads, losses=losses, counts=counts, rest=new_rest,
                   loss_weights=w, weighting_state=wstate, aggregation_state=astate,
                   agg_weights=a, gramian=gram)
