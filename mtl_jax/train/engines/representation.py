"""``representation``: per-task gradients w.r.t. the shared representation.

For models with one shared representation ``z`` (those with
``encode``/``decode``): the Jacobian w.r.t. ``z`` (size ``T x B x D``
instead of ``T x P``) from ONE VJP through the heads (each task reads its
own copy of ``z``), its Gramian, the aggregator's weights, then one VJP
through the trunk. MGDA on this engine is MGDA-UB (Sener & Koltun, 2018).
Only for aggregators with ``weights``.

Over micro-batches: the Gramian of the gradients w.r.t. ``z`` is additive
over micro-batches (their rows of ``z`` are disjoint), so pass 1 runs the
encoder forward and the heads' VJP per micro-batch and accumulates it with
the losses; the weights are solved; pass 2 runs encode/decode again and
takes the VJP through the trunk with the final weights: **one extra forward
of the trunk**.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.base import combine, gramian
from mtl_jax.train import accumulation
from mtl_jax.train.engines.base import EngineOut, heads_of, requires, solve_weights


@requires(aggregator_weights=True, representation=True)
def representation(fns, state, batch, method, extras) -> EngineOut:
  if fns.encode is None or fns.decode is None:
    raise ValueError("engine 'representation' needs ModelFns.encode and decode "
                     "(make_encode_decode).")
  if fns.accumulated:
    return _accumulated(fns, state, batch, method, extras)
  params, rest = state.params, state.rest
  heads = heads_of(params)
  z, vjp_encode, new_rest = jax.vjp(
      lambda s: fns.encode(s, params, rest, batch), params["shared"], has_aux=True)
  # One copy of z per task: task t's loss depends on its copy only (the
  # encode/decode contract), so a single VJP of the summed losses yields every
  # row of the Jacobian w.r.t. z, instead of T VJPs through all the heads.
  names = sorted(params["tasks"])
  losses, vjp_decode, (counts, new_rest) = jax.vjp(
      lambda zs, h: fns.decode(zs, h, params, new_rest, batch),
      {name: z for name in names}, heads, has_aux=True)
  dz = vjp_decode(jnp.ones_like(losses))[0]
  jac_z = jnp.stack([dz[n] for n in names])
  gram = gramian(jac_z)
  w, a, wstate, astate = solve_weights(method, losses, gram, state.weighting_state,
                                       state.aggregation_state, extras)
  (shared_dir,) = vjp_encode(combine(a * w, jac_z))
  grads = {"shared": shared_dir, **vjp_decode(w)[1]}
  return EngineOut(grads=grads, losses=losses, counts=counts, rest=new_rest,
                   loss_weights=w, weighting_state=wstate, aggregation_state=astate,
                   agg_weights=a, gramian=gram)


def _accumulated(fns, state, batch, method, extras) -> EngineOut:
  """MGDA-UB style: z-Gramian in pass 1, the trunk's VJP in pass 2."""
  params, rest = state.params, state.rest
  encode, decode = fns.encode, fns.decode
  parts = accumulation.split(fns, batch)
  heads = heads_of(params)
  names = sorted(params["tasks"])

  def decode_sums(zs, heads, rest, batch):
    losses, (counts, rest) = decode(zs, heads, params, rest, batch)
    return losses * counts.astype(losses.dtype), rest

  def gram_body(carry, batch):
    gram, total, rest = carry
    z, new_rest = encode(params["shared"], params, rest, batch)
    s, vjp_decode, new_rest = jax.vjp(
        lambda zs: decode_sums(zs, heads, new_rest, batch), {name: z for name in names},
        has_aux=True)
    dz = vjp_decode(parts.inv)[0]  # task t's rows of d L_t / dz (one copy each)
    return gram + gramian(jnp.stack([dz[n] for n in names])), total + s, new_rest
  num_tasks = parts.counts.shape[0]
  init = (jnp.zeros((num_tasks, num_tasks), jnp.float32),
          jnp.zeros((num_tasks,), jnp.float32), rest)
  gram, total, _ = accumulation.scan(gram_body, init, parts.batches)
  losses = total * parts.inv
  w, a, wstate, astate = solve_weights(method, losses, gram, state.weighting_state,
                                       state.aggregation_state, extras)
  shared_cot, head_cot = accumulation.cotangents(w, parts.inv, a)

  def grad_body(carry, batch):
    grads, rest = carry
    z, vjp_encode, new_rest = jax.vjp(lambda s: encode(s, params, rest, batch),
                                      params["shared"], has_aux=True)
    _, vjp_decode, new_rest = jax.vjp(lambda zs, h: decode_sums(zs, h, new_rest, batch),
                                      {name: z for name in names}, heads, has_aux=True)
    dz = vjp_decode(shared_cot)[0]
    (shared,) = vjp_encode(sum(dz[n] for n in names))
    step_grads = {"shared": shared, **vjp_decode(head_cot)[1]}
    return accumulation.add(grads, step_grads), new_rest
  grads0 = {"shared": accumulation.zeros(params["shared"]), **accumulation.zeros(heads)}
  grads, new_rest = accumulation.scan(grad_body, (grads0, rest), parts.batches)
  return EngineOut(grads=grads, losses=losses, counts=parts.counts, rest=new_rest,
                   loss_weights=w, weighting_state=wstate, aggregation_state=astate,
                   agg_weights=a, gramian=gram)
