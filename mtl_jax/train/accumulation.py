"""Gradient accumulation: one step over ``M`` micro-batches, same result.

With ``train.accumulation_steps = M`` the step's batch of ``B`` examples is
run as ``M`` micro-batches of ``B / M`` under ``lax.scan``, so activation
memory is that of one micro-batch, and the update equals the whole-batch
update (up to float reassociation). Per-task losses are means over the
*global* batch, ``L_t = S_t / N_t`` with ``S_t = sum_m s_{t,m}`` the sum of
task ``t``'s example losses and ``N_t = sum_m n_{t,m}`` its labelled
examples (``L_t = 0`` when ``N_t = 0``). So the micro-batches contribute loss
*sums*, and every cotangent on them is scaled by ``1 / N_t``, the global
count, known before the first micro-batch (``ModelFns.counts``,
:func:`mtl_jax.train.step.make_counts`). A task masked out of a micro-batch
simply adds nothing there.

This module holds the machinery the engines share (the split, the scan,
the passes of forwards and VJPs, the weighted step); each engine
(:mod:`mtl_jax.train.engines`) runs its accumulated path from its own module,
where its cost per step is written. In short: ``weighted`` and ``reuse`` take
one extra forward when the loss weights read the current losses,
``jacobian`` one pass, ``representation`` one extra forward of the trunk,
``gramian`` ``2T + 1`` passes.

Non-parameter state (``rest``, batch-norm running statistics) is carried
through the scan: batch statistics are those of each micro-batch, and the
running averages take ``M`` updates per step, as in every framework. Every
pass of a step starts from the step's ``rest``, so passes see the same
sequence; the step returns the state after the last micro-batch.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core

from mtl_jax.train.engines.base import EngineOut, ModelFns, loss_weights


def check_steps(steps: Any) -> int:
  """Returns ``train.accumulation_steps`` as an int; raises unless >= 1."""
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
    raise ValueError(
        f"train.accumulation_steps must be a positive integer, got {steps!r}.")
  return int(steps)


def check_batch(batch_size: int, steps: int, num_devices: int = 1) -> None:
  """Raises unless the batch splits into equal micro-batches over the devices."""
  if batch_size % steps:
    raise ValueError(
        f"train.batch_size={batch_size} is not divisible by "
        f"train.accumulation_steps={steps}.")
  micro = batch_size // steps
  if micro % num_devices:
    raise ValueError(
        f"The micro-batch of {micro} examples (train.batch_size={batch_size} / "
        f"train.accumulation_steps={steps}) is not divisible by the "
        f"{num_devices} devices of the data axis; every device needs the same "
        "number of rows of every micro-batch.")


def micro_batches(batch: dict, steps: int) -> dict:
  """``[B, ...] -> [M, B/M, ...]``: micro-batch ``m`` is rows ``m, m+M, ...``.

  Strided, not contiguous: the batch is sharded on its first axis, device
  ``d`` of ``D`` holding rows ``[d B/D, (d+1) B/D)``. Row ``r = i M + m`` goes
  to micro-batch ``m`` at position ``i``, so device ``d``'s rows are the block
  ``i in [d B/(DM), (d+1) B/(DM))`` of *every* micro-batch: the split is a
  local reshape, every device works on every micro-batch, and multi-host
  slices stay on their host. Contiguous micro-batches (rows
  ``[m B/M, (m+1) B/M)``) would each live on ``D/M`` devices: an all-to-all
  to reshard, or devices idle for most of the scan.
  """
  sizes = {x.shape[0] for x in jax.tree.leaves(batch)}
  if len(sizes) != 1:
    raise ValueError(f"Batch arrays disagree on the batch size: {sorted(sizes)}.")
  size = sizes.pop()
  check_batch(size, steps)

  def split_rows(x):
    x = jnp.asarray(x)
    return jnp.moveaxis(x.reshape((size // steps, steps) + x.shape[1:]), 1, 0)
  return jax.tree.map(split_rows, batch)


class Split(NamedTuple):
  batches: dict        # [M, B/M, ...]
  counts: jax.Array    # [T] global labelled examples N_t
  inv: jax.Array       # [T] 1 / max(N_t, 1): loss sums -> global means


def split(fns: ModelFns, batch: dict) -> Split:
  """The micro-batches of ``batch`` and its global counts (``fns.counts``)."""
  if fns.counts is None:
    raise ValueError("Gradient accumulation needs ModelFns.counts (make_counts).")
  counts = fns.counts(batch)
  inv = 1.0 / jnp.maximum(counts, 1).astype(jnp.float32)
  return Split(micro_batches(batch, fns.accumulation_steps), counts, inv)


def sums(forward):
  """``forward`` on loss sums ``s_t = L_t n_t``: what micro-batches add up."""
  def f(params, rest, batch):
    losses, (counts, new_rest) = forward(params, rest, batch)
    return losses * counts.astype(losses.dtype), (counts, new_rest)
  return f


def scan(body, init, batches):
  """``body(carry, micro_batch) -> carry`` over the micro-batches."""
  return jax.lax.scan(lambda c, b: (body(c, b), None), init, batches)[0]


def add(a, b):
  return jax.tree.map(jnp.add, a, b)


def zeros(tree):
  return jax.tree.map(jnp.zeros_like, tree)


def first(batches):
  return jax.tree.map(lambda x: x[0], batches)


def sum_zeros(f, *args):
  """Zeros shaped like the loss sums of ``f(*args)``, without running it."""
  shape = jax.eval_shape(f, *args)[0]
  return jnp.zeros(shape.shape, shape.dtype)


def loss_pass(forward, params, rest, parts: Split):
  """Forward only: the loss sums ``[T]`` over the micro-batches."""
  f = sums(forward)

  def body(carry, batch):
    total, rest = carry
    s, (_, rest) = f(params, rest, batch)
    return total + s, rest
  init = (sum_zeros(f, params, rest, first(parts.batches)), rest)
  return scan(body, init, parts.batches)[0]


def vjp_pass(forward, params, rest, parts: Split, shared_cot, head_cot):
  """``sum_m`` of the VJPs of the micro-batch loss sums.

  The shared group gets cotangent ``shared_cot`` [T], the others
  ``head_cot`` (one pull when they are the same array).

  Returns:
    ``(grads, loss sums [T], rest after the last micro-batch)``.
  """
  f = sums(forward)

  def body(carry, batch):
    grads, total, rest = carry
    s, vjp, (_, new_rest) = jax.vjp(lambda p: f(p, rest, batch), params, has_aux=True)
    (step_grads,) = vjp(head_cot)
    if shared_cot is not head_cot:
      step_grads = dict(step_grads, shared=vjp(shared_cot)[0]["shared"])
    return add(grads, step_grads), total + s, new_rest
  init = (zeros(params), sum_zeros(f, params, rest, first(parts.batches)), rest)
  return scan(body, init, parts.batches)


def cotangents(w, inv, agg_weights):
  """(shared, heads) cotangents on the micro-batch loss sums."""
  heads = w * inv
  return (heads if agg_weights is None else agg_weights * heads), heads


def _depends_on(jaxpr, sources) -> bool:
  """Whether any output of ``jaxpr`` depends on the variables ``sources``.

  Conservative: an equation whose inputs touch ``sources`` taints all its
  outputs (sub-jaxprs of ``cond``, ``pjit``, ... included).
  """
  tainted = set(sources)
  for eqn in jaxpr.eqns:
    if any(isinstance(v, jax_core.Var) and v in tainted for v in eqn.invars):
      tainted.update(eqn.outvars)
  return any(isinstance(v, jax_core.Var) and v in tainted for v in jaxpr.outvars)


def weights_read_losses(method, num_tasks: int, wstate, extras, gram) -> bool:
  """Whether the loss weights depend on the current losses (trace-time)."""
  def weights(losses, wstate, extras, gram):
    return loss_weights(method, losses, wstate, extras, gram)[0]
  closed = jax.make_jaxpr(weights)(jnp.zeros((num_tasks,), jnp.float32), wstate,
                                   extras, gram)
  return _depends_on(closed.jaxpr, closed.jaxpr.invars[:1])


def weighted_step(fns: ModelFns, state, batch, method, extras, *,
                  agg_weights: Optional[jax.Array] = None,
                  gram: Optional[jax.Array] = None) -> EngineOut:
  """Loss weights of the global losses, then one pass of VJPs.

  The shared group gets ``grad sum_t a_t w_t L_t`` (``a = agg_weights``, or
  ones when None), the other groups ``grad sum_t w_t L_t``; the weighting
  sees the Gramian ``gram``. ``agg_weights`` and ``gram`` are returned as
  they are (the ``weighted`` engine passes None, ``reuse`` the last solve's).
  """
  parts = split(fns, batch)
  params, rest, wstate = state.params, state.rest, state.weighting_state
  num_tasks = parts.counts.shape[0]
  if weights_read_losses(method, num_tasks, wstate, extras, gram):
    losses = loss_pass(fns.forward, params, rest, parts) * parts.inv  # extra forward
    w, wstate = loss_weights(method, losses, wstate, extras, gram)
    grads, _, new_rest = vjp_pass(fns.forward, params, rest, parts,
                                  *cotangents(w, parts.inv, agg_weights))
  else:
    w, _ = loss_weights(method, jnp.zeros((num_tasks,), jnp.float32), wstate,
                        extras, gram)
    grads, total, new_rest = vjp_pass(fns.forward, params, rest, parts,
                                      *cotangents(w, parts.inv, agg_weights))
    losses = total * parts.inv
    # The same weights (they do not read the losses); the state may.
    w, wstate = loss_weights(method, losses, wstate, extras, gram)
  return EngineOut(grads=grads, losses=losses, counts=parts.counts, rest=new_rest,
                   loss_weights=w, weighting_state=wstate,
                   aggregation_state=state.aggregation_state,
                   agg_weights=agg_weights, gramian=gram)
