"""``gramian``: the Gramian without the Jacobian (memory-lean).

Never holds ``J``. Linearises once, forms the Gramian column by column
(``G e_s = J (J^T e_s)``, one VJP and one JVP per task under ``lax.map``),
solves for the aggregation weights ``a`` and takes one more VJP with
cotangent ``a * w``. Only for aggregators with ``weights``.

Over micro-batches: ``G = J J^T`` with ``J = sum_m J_m`` is *not* the sum of
the micro-batch Gramians (cross terms ``J_m J_m'^T``). It is formed column
by column as on the whole batch, with ``J^T e_s`` a pass of VJPs and ``J v``
a pass of JVPs over the micro-batches: memory of one parameter vector and
one micro-batch, cost ``2T + 1`` passes over the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.train import accumulation
from mtl_jax.train.engines.base import EngineOut, heads_of, requires, solve_weights


@requires(aggregator_weights=True)
def gramian(fns, state, batch, method, extras) -> EngineOut:
  if fns.accumulated:
    return _accumulated(fns, state, batch, method, extras)
  params, rest = state.params, state.rest
  losses, f_jvp, (counts, new_rest) = jax.linearize(
      lambda p: fns.forward(p, rest, batch), params, has_aux=True)
  f_vjp = jax.linear_transpose(f_jvp, params)

  def gram_column(e):
    v = f_vjp(e)[0]
    v = {g: (sub if g == "shared" else jax.tree.map(jnp.zeros_like, sub))
         for g, sub in v.items()}
    return f_jvp(v)

  eye = jnp.eye(losses.shape[0], dtype=losses.dtype)
  gram = jax.lax.map(gram_column, eye)
  gram = 0.5 * (gram + gram.T)
  w, a, wstate, astate = solve_weights(method, losses, gram, state.weighting_state,
                                       state.aggregation_state, extras)
  shared_dir = f_vjp(a * w)[0]["shared"]
  grads = {"shared": shared_dir, **heads_of(f_vjp(w)[0])}
  return EngineOut(grads=grads, losses=losses, counts=counts, rest=new_rest,
                   loss_weights=w, weighting_state=wstate, aggregation_state=astate,
                   agg_weights=a, gramian=gram)


def _accumulated(fns, state, batch, method, extras) -> EngineOut:
  """``G e_s = J (J^T e_s)``: a VJP pass and a JVP pass per task."""
  params, rest = state.params, state.rest
  parts = accumulation.split(fns, batch)
  f = accumulation.sums(fns.forward)
  shared = params["shared"]
  f_shared = lambda s, rest, batch: f(dict(params, shared=s), rest, batch)

  def column(cotangent):
    def vjp_body(carry, batch):
      v, total, rest = carry
      s, vjp, (_, new_rest) = jax.vjp(lambda x: f_shared(x, rest, batch), shared,
                                      has_aux=True)
      return accumulation.add(v, vjp(cotangent)[0]), total + s, new_rest
    sums0 = accumulation.sum_zeros(f, params, rest, accumulation.first(parts.batches))
    v, total, _ = accumulation.scan(vjp_body, (accumulation.zeros(shared), sums0, rest),
                                    parts.batches)

    def jvp_body(carry, batch):
      col, rest = carry
      _, dcol, (_, new_rest) = jax.jvp(lambda x: f_shared(x, rest, batch), (shared,),
                                       (v,), has_aux=True)
      return col + dcol, new_rest
    col, _ = accumulation.scan(jvp_body, (jnp.zeros_like(sums0), rest), parts.batches)
    return col * parts.inv, total

  # Row s of diag(1/N): J^T of it is task s's gradient of its global mean loss.
  cols, totals = jax.lax.map(column, jnp.diag(parts.inv))
  gram = 0.5 * (cols + cols.T)
  losses = totals[0] * parts.inv
  w, a, wstate, astate = solve_weights(method, losses, gram, state.weighting_state,
                                       state.aggregation_state, extras)
  grads, _, new_rest = accumulation.vjp_pass(fns.forward, params, rest, parts,
                                             *accumulation.cotangents(w, parts.inv, a))
  return EngineOut(grads=grads, losses=losses, counts=parts.counts, rest=new_rest,
                   loss_weights=w, weighting_state=wstate, aggregation_state=astate,
                   agg_weights=a, gramian=gram)
