"""``weighted``: the weighted loss sum; ``reuse``: the steps between solves.

``weighted`` (no aggregator, weighting without ``needs``): one forward, one
VJP with cotangent ``w``. Exactly the cost of the summed loss. It computes
no per-task gradients.

``reuse`` (``method.every > 1``): the step between two solves, one forward
and the weighted VJPs. It uses the aggregation weights ``a`` and Gramian of
the last solve (``state.agg_weights``, ``state.gramian``): the shared group
gets ``grad sum_t a_t w_t L_t`` and the other groups ``grad sum_t w_t L_t``.

Over micro-batches (:func:`mtl_jax.train.accumulation.weighted_step`): the
weights ``w = weighting(L)`` may depend on the global losses (GLS, IMTL-L,
DWA's bookkeeping, ...), which exist only after the last micro-batch. So:
a forward-only pass for ``L``, the weights, then a pass of VJPs with
cotangents ``w_t / N_t``: **one extra forward** per step. When the weights
provably do not read the current losses (equal, fixed, uncertainty, RLW,
...: checked on the weighting's jaxpr), the extra forward is skipped.
"""

from __future__ import annotations

from typing import Optional

import jax

from mtl_jax.train import accumulation
from mtl_jax.train.engines.base import EngineOut, forward_vjp, loss_weights, requires


@requires(task_gradients=False)
def weighted(fns, state, batch, method, extras) -> EngineOut:
  """``grad sum_t w_t L_t`` for every group."""
  return _weighted_sum(fns, state, batch, method, extras)


@requires(task_gradients=False)
def reuse(fns, state, batch, method, extras) -> EngineOut:
  """The step between two solves: the last solve's ``a`` on the shared group."""
  return _weighted_sum(fns, state, batch, method, extras,
                       agg_weights=state.agg_weights, gram=state.gramian)


def _weighted_sum(fns, state, batch, method, extras, *,
                  agg_weights: Optional[jax.Array] = None,
                  gram: Optional[jax.Array] = None) -> EngineOut:
  if fns.accumulated:
    return accumulation.weighted_step(fns, state, batch, method, extras,
                                      agg_weights=agg_weights, gram=gram)
  losses, vjp, counts, new_rest = forward_vjp(fns, state, batch)
  w, wstate = loss_weights(method, losses, state.weighting_state, extras, gram)
  if agg_weights is None:
    (grads,) = vjp(w)
  else:
    shared = vjp(agg_weights * w)[0]["shared"]
    grads = dict(vjp(w)[0], shared=shared)
  return EngineOut(grads=grads, losses=losses, counts=counts, rest=new_rest,
                   loss_weights=w, weighting_state=wstate,
                   aggregation_state=state.aggregation_state,
                   agg_weights=agg_weights, gramian=gram)
