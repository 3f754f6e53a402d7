"""Gradient accumulation: one step over ``M`` micro-batches, same result.

With ``train.accumulation_steps = M`` the step's batch of ``B`` examples is
run as ``M`` micro-batches of ``B / M`` under ``lax.scan``, so activation
memory is that of one micro-batch, and the update equals the whole-batch
update (up to float reassociation). Per-task losses are means over the
*global* batch, ``L_t = S_t / N_t`` with ``S_t = sum_m s_{t,m}`` the sum of
task ``t``'s example losses and ``N_t = sum_m n_{t,m}`` its labelled
examples (``L_t = 0`` when ``N_t = 0``). So the micro-batches contribute loss
*sums*, and every cotangent on them is scaled by ``1 / N_t``, the global
count, known before the first micro-batch (:func:`mtl_jax.train.step.make_counts`).
A task masked out of a micro-batch simply adds nothing there.

What each engine (:mod:`mtl_jax.train.engines`) does, and costs, per step:

* ``weighted`` (and the periodic steps between solves, ``reuse``): the
  weights ``w = weighting(L)`` may depend on the global losses (GLS, IMTL-L,
  DWA's bookkeeping, ...), which exist only after the last micro-batch. So:
  a forward-only pass for ``L``, the weights, then a pass of VJPs with
  cotangents ``w_t / N_t``: **one extra forward** per step. When the
  weights provably do not read the current losses (equal, fixed,
  uncertainty, RLW, ...: checked on the weighting's jaxpr), the extra
  forward is skipped.
* ``jacobian``: one pass accumulating loss sums and the rows of the
  Jacobian (every parameter group, ``T`` VJPs per micro-batch), then the
  whole-batch method logic unchanged (:func:`engines.finish_jacobian`).
  Memory: ``T x P`` (as without accumulation) plus one micro-batch.
* ``representation``: the Gramian of the gradients w.r.t. ``z`` is additive
  over micro-batches (their rows of ``z`` are disjoint), so pass 1 runs the
  encoder forward and the heads' VJP per micro-batch and accumulates it with
  the losses; the weights are solved; pass 2 runs encode/decode again and
  takes the VJP through the trunk with the final weights: **one extra
  forward of the trunk**.
* ``gramian``: ``G = J J^T`` with ``J = sum_m J_m`` is *not* the sum of the
  micro-batch Gramians (cross terms ``J_m J_m'^T``). It is formed column by
  column as in the whole-batch engine, ``G e_s = J (J^T e_s)``, with
  ``J^T e_s`` a pass of VJPs and ``J v`` a pass of JVPs over the
  micro-batches: memory of one parameter vector and one micro-batch, cost
  ``2T + 1`` passes over the batch.

Non-parameter state (``rest``, batch-norm running statistics) is carried
through the scan: batch statistics are those of each micro-batch, and the
running averages take ``M`` updates per step, as in every framework. Every
pass of a step starts from the step's ``rest``, so passes see the same
sequence; the step returns the state after the last micro-batch.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core

from mtl_jax.aggregation.base import gramian
from mtl_jax.train import engines
from mtl_jax.train.engines import EngineOut, Gathered


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

  def split(x):
    x = jnp.asarray(x)
    return jnp.moveaxis(x.reshape((size // steps, steps) + x.shape[1:]), 1, 0)
  return jax.tree.map(split, batch)


class Accumulation(NamedTuple):
  """How a step splits its batch.

  Attributes:
    steps: ``M``, the number of micro-batches.
    counts_of: ``batch -> [T]`` labelled examples per task (no model run).
  """

  steps: int
  counts_of: Callable[[dict], jax.Array]


class _Split(NamedTuple):
  batches: dict        # [M, B/M, ...]
  counts: jax.Array    # [T] global labelled examples N_t
  inv: jax.Array       # [T] 1 / max(N_t, 1): loss sums -> global means


def _split(acc: Accumulation, batch: dict) -> _Split:
  counts = acc.counts_of(batch)
  inv = 1.0 / jnp.maximum(counts, 1).astype(jnp.float32)
  return _Split(micro_batches(batch, acc.steps), counts, inv)


def _sums(forward):
  """``forward`` on loss sums ``s_t = L_t n_t``: what micro-batches add up."""
  def f(params, rest, batch):
    losses, (counts, new_rest) = forward(params, rest, batch)
    return losses * counts.astype(losses.dtype), (counts, new_rest)
  return f


def _scan(body, init, batches):
  """``body(carry, micro_batch) -> carry`` over the micro-batches."""
  return jax.lax.scan(lambda c, b: (body(c, b), None), init, batches)[0]


def _add(a, b):
  return jax.tree.map(jnp.add, a, b)


def _zeros(tree):
  return jax.tree.map(jnp.zeros_like, tree)


def _first(batches):
  return jax.tree.map(lambda x: x[0], batches)


def _sum_zeros(f, *args):
  """Zeros shaped like the loss sums of ``f(*args)``, without running it."""
  shape = jax.eval_shape(f, *args)[0]
  return jnp.zeros(shape.shape, shape.dtype)


def _loss_pass(forward, params, rest, split: _Split):
  """Forward only: the loss sums ``[T]`` over the micro-batches."""
  f = _sums(forward)

  def body(carry, batch):
    sums, rest = carry
    s, (_, rest) = f(params, rest, batch)
    return sums + s, rest
  init = (_sum_zeros(f, params, rest, _first(split.batches)), rest)
  return _scan(body, init, split.batches)[0]


def _vjp_pass(forward, params, rest, split: _Split, shared_cot, head_cot):
  """``sum_m`` of the VJPs of the micro-batch loss sums.

  The shared group gets cotangent ``shared_cot`` [T], the others
  ``head_cot`` (one pull when they are the same array).

  Returns:
    ``(grads, loss sums [T], rest after the last micro-batch)``.
  """
  f = _sums(forward)

  def body(carry, batch):
    grads, sums, rest = carry
    s, vjp, (_, new_rest) = jax.vjp(lambda p: f(p, rest, batch), params, has_aux=True)
    (step_grads,) = vjp(head_cot)
    if shared_cot is not head_cot:
      step_grads = dict(step_grads, shared=vjp(shared_cot)[0]["shared"])
    return _add(grads, step_grads), sums + s, new_rest
  init = (_zeros(params), _sum_zeros(f, params, rest, _first(split.batches)), rest)
  return _scan(body, init, split.batches)


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


def weights_read_losses(method: engines.Method, num_tasks: int, wstate, extras,
                        gram) -> bool:
  """Whether the loss weights depend on the current losses (trace-time)."""
  def weights(losses, wstate, extras, gram):
    return engines.loss_weights(method, losses, wstate, extras, gram)[0]
  closed = jax.make_jaxpr(weights)(jnp.zeros((num_tasks,), jnp.float32), wstate,
                                   extras, gram)
  return _depends_on(closed.jaxpr, closed.jaxpr.invars[:1])


def _weighted_step(acc, forward, params, rest, batch, method, wstate, extras, gram,
                   agg_weights):
  """Loss weights of the global losses, then one pass of VJPs.

  The shared group gets ``grad sum_t a_t w_t L_t`` (``a = agg_weights``, or
  ones when None), the other groups ``grad sum_t w_t L_t``.

  Returns:
    ``(grads, losses, counts, rest, w, wstate)``.
  """
  split = _split(acc, batch)
  num_tasks = split.counts.shape[0]
  if weights_read_losses(method, num_tasks, wstate, extras, gram):
    losses = _loss_pass(forward, params, rest, split) * split.inv  # extra forward
    w, wstate = engines.loss_weights(method, losses, wstate, extras, gram)
    grads, _, new_rest = _vjp_pass(forward, params, rest, split,
                                   *_cotangents(w, split.inv, agg_weights))
  else:
    w, _ = engines.loss_weights(method, jnp.zeros((num_tasks,), jnp.float32), wstate,
                                extras, gram)
    grads, sums, new_rest = _vjp_pass(forward, params, rest, split,
                                      *_cotangents(w, split.inv, agg_weights))
    losses = sums * split.inv
    # The same weights (they do not read the losses); the state may.
    w, wstate = engines.loss_weights(method, losses, wstate, extras, gram)
  return grads, losses, split.counts, new_rest, w, wstate


def _cotangents(w, inv, agg_weights):
  """(shared, heads) cotangents on the micro-batch loss sums."""
  heads = w * inv
  return (heads if agg_weights is None else agg_weights * heads), heads


def weighted(acc, forward, params, rest, batch, method, wstate, astate,
             extras) -> EngineOut:
  """The weighted loss sum (:func:`engines.weighted`), over micro-batches."""
  grads, losses, counts, new_rest, w, wstate = _weighted_step(
      acc, forward, params, rest, batch, method, wstate, extras, None, None)
  return EngineOut(grads, losses, counts, new_rest, w, None, None, wstate, astate)


def reuse(acc, forward, params, rest, batch, method, wstate, astate, extras,
          agg_weights, gram) -> EngineOut:
  """The periodic step between solves (see :func:`engines.reuse`)."""
  grads, losses, counts, new_rest, w, wstate = _weighted_step(
      acc, forward, params, rest, batch, method, wstate, extras, gram, agg_weights)
  return EngineOut(grads, losses, counts, new_rest, w, agg_weights, gram, wstate,
                   astate)


def gather_jacobian(acc, forward, params, rest, batch) -> Gathered:
  """Loss sums and Jacobian rows of every group, accumulated in one pass."""
  split = _split(acc, batch)
  f = _sums(forward)
  scaled_eye = jnp.diag(split.inv)  # row t: d(S_t / N_t), the global mean's row

  def body(carry, batch):
    jac, sums, rest = carry
    s, vjp, (_, new_rest) = jax.vjp(lambda p: f(p, rest, batch), params, has_aux=True)
    rows = jax.vmap(lambda c: vjp(c)[0])(scaled_eye)
    return _add(jac, rows), sums + s, new_rest
  num_tasks = split.counts.shape[0]
  jac0 = jax.tree.map(lambda p: jnp.zeros((num_tasks,) + p.shape, p.dtype), params)
  init = (jac0, _sum_zeros(f, params, rest, _first(split.batches)), rest)
  jac, sums, new_rest = _scan(body, init, split.batches)
  return Gathered(sums * split.inv, split.counts, new_rest, jac)


def jacobian(acc, forward, params, rest, batch, method, wstate, astate,
             extras) -> EngineOut:
  """:func:`engines.jacobian` on the Jacobian gathered over micro-batches."""
  return engines.finish_jacobian(gather_jacobian(acc, forward, params, rest, batch),
                                 method, wstate, astate, extras)


def gramian_engine(acc, forward, params, rest, batch, method, wstate, astate,
                   extras) -> EngineOut:
  """``G e_s = J (J^T e_s)``: a VJP pass and a JVP pass per task."""
  split = _split(acc, batch)
  f = _sums(forward)
  shared = params["shared"]
  f_shared = lambda s, rest, batch: f(dict(params, shared=s), rest, batch)

  def column(cotangent):
    def vjp_body(carry, batch):
      v, sums, rest = carry
      s, vjp, (_, new_rest) = jax.vjp(lambda x: f_shared(x, rest, batch), shared,
                                      has_aux=True)
      return _add(v, vjp(cotangent)[0]), sums + s, new_rest
    sums0 = _sum_zeros(f, params, rest, _first(split.batches))
    v, sums, _ = _scan(vjp_body, (_zeros(shared), sums0, rest), split.batches)

    def jvp_body(carry, batch):
      col, rest = carry
      _, dcol, (_, new_rest) = jax.jvp(lambda x: f_shared(x, rest, batch), (shared,),
                                       (v,), has_aux=True)
      return col + dcol, new_rest
    col, _ = _scan(jvp_body, (jnp.zeros_like(sums0), rest), split.batches)
    return col * split.inv, sums

  # Row s of diag(1/N): J^T of it is task s's gradient of its global mean loss.
  cols, sums = jax.lax.map(column, jnp.diag(split.inv))
  gram = 0.5 * (cols + cols.T)
  losses = sums[0] * split.inv
  w, a, wstate, astate = engines.solve_weights(method, losses, gram, wstate, astate,
                                               extras)
  grads, _, new_rest = _vjp_pass(forward, params, rest, split,
                                 *_cotangents(w, split.inv, a))
  return EngineOut(grads, losses, split.counts, new_rest, w, a, gram, wstate, astate)


def representation(acc, encode, decode, params, rest, batch, method, wstate, astate,
                   extras) -> EngineOut:
  """MGDA-UB style: z-Gramian in pass 1, the trunk's VJP in pass 2."""
  split = _split(acc, batch)
  heads = {g: params[g] for g in engines.HEAD_GROUPS if g in params}
  names = sorted(params["tasks"])

  def decode_sums(zs, heads, rest, batch):
    losses, (counts, rest) = decode(zs, heads, params, rest, batch)
    return losses * counts.astype(losses.dtype), rest

  def gram_body(carry, batch):
    gram, sums, rest = carry
    z, new_rest = encode(params["shared"], params, rest, batch)
    s, vjp_decode, new_rest = jax.vjp(
        lambda zs: decode_sums(zs, heads, new_rest, batch), {name: z for name in names},
        has_aux=True)
    dz = vjp_decode(split.inv)[0]  # task t's rows of d L_t / dz (one copy each)
    return gram + gramian(jnp.stack([dz[n] for n in names])), sums + s, new_rest
  num_tasks = split.counts.shape[0]
  init = (jnp.zeros((num_tasks, num_tasks), jnp.float32),
          jnp.zeros((num_tasks,), jnp.float32), rest)
  gram, sums, _ = _scan(gram_body, init, split.batches)
  losses = sums * split.inv
  w, a, wstate, astate = engines.solve_weights(method, losses, gram, wstate, astate,
                                               extras)
  shared_cot, head_cot = _cotangents(w, split.inv, a)

  def grad_body(carry, batch):
    grads, rest = carry
    z, vjp_encode, new_rest = jax.vjp(lambda s: encode(s, params, rest, batch),
                                      params["shared"], has_aux=True)
    _, vjp_decode, new_rest = jax.vjp(lambda zs, h: decode_sums(zs, h, new_rest, batch),
                                      {name: z for name in names}, heads, has_aux=True)
    dz = vjp_decode(shared_cot)[0]
    (shared,) = vjp_encode(sum(dz[n] for n in names))
    return _add(grads, {"shared": shared, **vjp_decode(head_cot)[1]}), new_rest
  grads0 = {"shared": _zeros(params["shared"]), **_zeros(heads)}
  grads, new_rest = _scan(grad_body, (grads0, rest), split.batches)
  return EngineOut(grads, losses, split.counts, new_rest, w, a, gram, wstate, astate)


def engine_kit(steps: int, counts_of: Callable[[dict], jax.Array]) -> engines.EngineKit:
  """The engines of :mod:`mtl_jax.train.engines`, over ``steps`` micro-batches."""
  acc = Accumulation(check_steps(steps), counts_of)
  bind = lambda fn: functools.partial(fn, acc)
  return engines.EngineKit(
      full_forward={"weighted": bind(weighted), "jacobian": bind(jacobian),
                    "gramian": bind(gramian_engine)},
      representation=bind(representation), reuse=bind(reuse),
      gather_jacobian=bind(gather_jacobian))
