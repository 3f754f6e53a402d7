"""The train step: one pure function ``(state, batch) -> (state, metrics)``.

Data flow (read top to bottom in :func:`make_train_step`)::

  batch -> [M strided micro-batches under lax.scan, if accumulating]
        -> model (merged from the state's float32 params, computing in the
           compute dtype) -> per-task masked losses [T] (float32)
        -> engine (:mod:`mtl_jax.train.engines`, one call for all of them:
           ``engine(fns, state, batch, method, extras)``): loss weights,
           per-task gradients of the shared group, aggregation -> one
           direction per parameter group
        -> + penalty gradients -> optax -> new params and states
        -> skipped (state kept) if any loss or gradient is non-finite

Per-task losses are means over the global batch, so a step sharded over N
devices computes the same numbers as on one, and a step accumulated over M
micro-batches (``accumulation_steps``, :mod:`mtl_jax.train.accumulation`) the
same numbers as on the whole batch. The model may compute in bfloat16
(``compute_dtype``, :mod:`mtl_jax.train.precision`); everything from the
losses on is float32.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mtl_jax.aggregation.base import gramian
from mtl_jax.losses import task_losses
from mtl_jax.losses import metrics as metrics_lib
from mtl_jax.losses.losses import effective_mask
from mtl_jax.tasks import Task
from mtl_jax.train import accumulation, engines, precision
from mtl_jax.train.engines import weighted
from mtl_jax.train.engines import jacobian as jacobian_engine
from mtl_jax.train.state import TrainState


def _rest_of(model) -> dict:
  return nnx.to_pure_dict(nnx.state(model, nnx.Not(nnx.Param)))


def _inputs(batch, dtype):
  return precision.cast_floating(batch["inputs"], dtype)


def _float32(preds):
  return precision.cast_floating(preds, jnp.float32)


def make_forward(graphdef, tasks: Sequence[Task], *, train: bool = True,
                 compute_dtype: precision.DTypeLike = "float32"):
  """``forward(params, rest, batch) -> (losses [T], (counts [T], new_rest))``.

  The model runs in ``compute_dtype`` on float32 ``params`` and ``rest``
  (:func:`mtl_jax.train.precision.merge`); losses are float32.
  """
  dtype = precision.compute_dtype(compute_dtype)

  def forward(params, rest, batch):
    model = precision.merge(graphdef, params, rest, dtype)
    preds = model(_inputs(batch, dtype), train=train)
    losses, counts = task_losses(tasks, _float32(preds), batch)
    return losses, (counts, precision.like(_rest_of(model), rest))
  return forward


def make_encode_decode(graphdef, tasks: Sequence[Task], *,
                       compute_dtype: precision.DTypeLike = "float32"):
  """The two halves of the forward pass for the representation engine.

  ``encode(shared, params, rest, batch) -> (z, rest)`` returns the
  representation ``z`` in float32, so the Jacobian w.r.t. ``z`` and its
  Gramian are float32; ``decode(z, heads, params, rest, batch) -> (losses,
  (counts, rest))`` casts it back to the compute dtype. Each returns the
  non-parameter state after its half (batch statistics of the trunk, then of
  the heads).
  """
  dtype = precision.compute_dtype(compute_dtype)

  def encode(shared, params, rest, batch):
    model = precision.merge(graphdef, dict(params, shared=shared), rest, dtype)
    z = model.encode(_inputs(batch, dtype), train=True)
    return _float32(z), precision.like(_rest_of(model), rest)

  def decode(z, heads, params, rest, batch):
    model = precision.merge(graphdef, dict(params, **heads), rest, dtype)
    preds = model.decode(precision.cast_floating(z, dtype), train=True)
    losses, counts = task_losses(tasks, _float32(preds), batch)
    return losses, (counts, precision.like(_rest_of(model), rest))
  return encode, decode


def make_counts(tasks: Sequence[Task]):
  """``counts(batch) -> [T]`` labelled examples per task, without the model.

  For a dense task: its valid pixels (:func:`effective_mask` is per pixel).

  The same numbers as the ``counts`` of :func:`task_losses`; gradient
  accumulation needs them before the first micro-batch is run.
  """
  def counts(batch):
    return jnp.stack([
        effective_mask(t, batch["targets"][t.name], batch["mask"][t.name]).sum()
        for t in tasks])
  return counts


def make_model_fns(graphdef, tasks: Sequence[Task], *,
                   compute_dtype: precision.DTypeLike = "float32",
                   accumulation_steps: int = 1,
                   representation: bool = False) -> engines.ModelFns:
  """The :class:`engines.ModelFns` every engine takes (built once per step).

  ``encode``/``decode`` are built with ``representation`` (the engine needs
  them), None otherwise; ``accumulation_steps`` is checked here.
  """
  tasks = tuple(tasks)
  encode, decode = (make_encode_decode(graphdef, tasks, compute_dtype=compute_dtype)
                    if representation else (None, None))
  return engines.ModelFns(
      forward=make_forward(graphdef, tasks, compute_dtype=compute_dtype),
      encode=encode, decode=decode, counts=make_counts(tasks),
      accumulation_steps=accumulation.check_steps(accumulation_steps))


def _all_finite(*trees) -> jax.Array:
  leaves = [x for t in trees for x in jax.tree.leaves(t)]
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _select(pred, new, old):
  return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


def make_train_step(
    graphdef,
    tasks: Sequence[Task],
    method: engines.Method,
    tx: optax.GradientTransformation,
    *,
    penalty: Optional[Callable[[dict], jax.Array]] = None,
    compute_dtype: precision.DTypeLike = "float32",
    accumulation_steps: int = 1,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """Builds the pure train step for one model, task set and method.

  Args:
    graphdef: the model's graph definition (from ``partition``).
    tasks: task declarations in canonical order.
    method: weighting, aggregator and engine (``engines.resolve``).
    tx: the optax transformation over ``{'shared', 'tasks', 'cross'}``.
    penalty: optional ``penalty(params) -> scalar`` added to the objective
      (soft-sharing penalties); its gradient is added to every group.
    compute_dtype: ``'float32'``, ``'bfloat16'`` or ``'float16'``: the dtype
      of the model's forward and backward passes. Parameters, losses,
      per-task gradients, Gramian, weighting, aggregation and the optimizer
      stay float32 (:mod:`mtl_jax.train.precision`).
    accumulation_steps: ``M``; the batch is processed as ``M`` strided
      micro-batches under ``lax.scan`` (activation memory of one
      micro-batch) with the same result as the whole batch
      (:mod:`mtl_jax.train.accumulation`, costs per engine there).

  Returns:
    ``train_step(state, batch) -> (state, metrics)``; jit it with
    ``donate_argnums=0``. Metrics: ``losses``, ``counts``, ``weights`` [T],
    ``agg_weights`` [T] (weighted-sum aggregators), ``gramian`` [T, T] (when
    per-task gradients were computed), ``total_loss``, ``penalty``,
    ``grad_norm``, ``skipped``.
  """
  engine = engines.get(method.engine)
  fns = make_model_fns(
      graphdef, tasks, compute_dtype=compute_dtype, accumulation_steps=accumulation_steps,
      representation=engines.requirements_of(engine).representation)

  def engine_out(state, batch, extras):
    solve = lambda _: engine(fns, state, batch, method, extras)
    if not method.periodic:
      return solve(None)
    reuse = lambda _: weighted.reuse(fns, state, batch, method, extras)
    return jax.lax.cond(state.step % method.every == 0, solve, reuse, None)

  def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    key = jax.random.fold_in(state.key, state.step)
    out = engine_out(state, batch, dict(step=state.step, key=key))
    grads = out.grads
    penalty_value = jnp.zeros((), out.losses.dtype)
    if penalty is not None:
      penalty_value, penalty_grads = jax.value_and_grad(penalty)(state.params)
      grads = jax.tree.map(jnp.add, grads, penalty_grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    updated = state._replace(
        params=optax.apply_updates(state.params, updates),
        rest=out.rest, opt_state=opt_state,
        weighting_state=out.weighting_state,
        aggregation_state=out.aggregation_state,
        agg_weights=(state.agg_weights if out.agg_weights is None
                     else out.agg_weights.astype(state.agg_weights.dtype)),
        gramian=(state.gramian if out.gramian is None
                 else out.gramian.astype(state.gramian.dtype)))
    finite = _all_finite(out.losses, grads, penalty_value)
    new_state = _select(finite, updated, state)._replace(
        step=state.step + 1,
        nonfinite_streak=jnp.where(finite, 0, state.nonfinite_streak + 1),
        nonfinite_total=state.nonfinite_total + (~finite).astype(jnp.int32))
    metrics = {
        "losses": out.losses, "counts": out.counts, "weights": out.loss_weights,
        "total_loss": jnp.sum(out.loss_weights * out.losses) + penalty_value,
        "penalty": penalty_value, "grad_norm": optax.tree.norm(grads),
        "skipped": ~finite,
    }
    if out.agg_weights is not None:
      metrics["agg_weights"] = out.agg_weights
    if out.gramian is not None:
      metrics["gramian"] = out.gramian
    if method.periodic:
      metrics["solved"] = state.step % method.every == 0
    return new_state, metrics

  return train_step


def make_gramian_probe(graphdef, tasks: Sequence[Task], *,
                       compute_dtype: precision.DTypeLike = "float32",
                       accumulation_steps: int = 1):
  """``probe(params, rest, batch) -> [T, T]`` Gramian of the shared gradients.

  Used to log the gradient cosines of runs whose step computes no per-task
  gradients (loss weighting only): the loop calls it on logged steps, so the
  train step itself stays the cost of the summed loss. It runs in the step's
  compute dtype and over the step's micro-batches (Jacobian in float32).
  """
  fns = make_model_fns(graphdef, tasks, compute_dtype=compute_dtype,
                       accumulation_steps=accumulation_steps)

  def probe(params, rest, batch):
    return gramian(jacobian_engine.gather(fns, params, rest, batch).jac["shared"])

  return probe


def make_eval_step(graphdef, tasks: Sequence[Task], *,
                   compute_dtype: precision.DTypeLike = "float32"):
  """``eval_step(params, rest, batch) -> {task: {metric: stats}, 'loss': ...}``.

  Statistics are sums over the batch's labelled examples, to be added up over
  a split and turned into values with ``metrics.compute_all``. The model runs
  in ``compute_dtype``; predictions are cast to float32 before the metrics.
  """
  tasks = tuple(tasks)
  dtype = precision.compute_dtype(compute_dtype)

  def eval_step(params, rest, batch):
    model = precision.merge(graphdef, params, rest, dtype)
    preds = _float32(model(_inputs(batch, dtype), train=False))
    losses, counts = task_losses(tasks, preds, batch)
    stats = metrics_lib.batch_stats(tasks, preds, batch)
    return {"stats": stats, "loss_sum": losses * counts, "counts": counts}

  return eval_step
