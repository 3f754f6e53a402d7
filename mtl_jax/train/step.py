"""The train step: one pure function ``(state, batch) -> (state, metrics)``.

Data flow (read top to bottom in :func:`make_train_step`)::

  batch -> model (merged from the state's params) -> per-task masked losses [T]
        -> engine: loss weights, per-task gradients of the shared group,
           aggregation -> one direction per parameter group
        -> + penalty gradients -> optax -> new params and states
        -> skipped (state kept) if any loss or gradient is non-finite

Per-task losses are means over the global batch, so a step sharded over N
devices computes the same numbers as on one.
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
from mtl_jax.models.partition import merge
from mtl_jax.tasks import Task
from mtl_jax.train import engines
from mtl_jax.train.state import TrainState


def _rest_of(model) -> dict:
  return nnx.to_pure_dict(nnx.state(model, nnx.Not(nnx.Param)))


def make_forward(graphdef, tasks: Sequence[Task], *, train: bool = True):
  """``forward(params, rest, batch) -> (losses [T], (counts [T], new_rest))``."""
  def forward(params, rest, batch):
    model = merge(graphdef, params, rest)
    preds = model(batch["inputs"], train=train)
    losses, counts = task_losses(tasks, preds, batch)
    return losses, (counts, _rest_of(model))
  return forward


def make_encode_decode(graphdef, tasks: Sequence[Task]):
  """The two halves of the forward pass for the representation engine."""
  def encode(shared, params, rest, batch):
    model = merge(graphdef, dict(params, shared=shared), rest)
    z = model.encode(batch["inputs"], train=True)
    return z, _rest_of(model)

  def decode(z, heads, params, rest, batch):
    model = merge(graphdef, dict(params, **heads), rest)
    return task_losses(tasks, model.decode(z, train=True), batch)
  return encode, decode


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
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """Builds the pure train step for one model, task set and method.

  Args:
    graphdef: the model's graph definition (from ``partition``).
    tasks: task declarations in canonical order.
    method: weighting, aggregator and engine (``engines.resolve``).
    tx: the optax transformation over ``{'shared', 'tasks', 'cross'}``.
    penalty: optional ``penalty(params) -> scalar`` added to the objective
      (soft-sharing penalties); its gradient is added to every group.

  Returns:
    ``train_step(state, batch) -> (state, metrics)``; jit it with
    ``donate_argnums=0``. Metrics: ``losses``, ``counts``, ``weights`` [T],
    ``agg_weights`` [T] (weighted-sum aggregators), ``gramian`` [T, T] (when
    per-task gradients were computed), ``total_loss``, ``penalty``,
    ``grad_norm``, ``skipped``.
  """
  tasks = tuple(tasks)

  forward = make_forward(graphdef, tasks)

  def engine_out(state, batch, extras):
    args = (state.params, state.rest, batch, method, state.weighting_state,
            state.aggregation_state, extras)
    def solve(_):
      if method.engine == "representation":
        return engines.representation(*make_encode_decode(graphdef, tasks), *args)
      return engines.FULL_FORWARD_ENGINES[method.engine](forward, *args)
    if not method.periodic:
      return solve(None)
    def reuse(_):
      return engines.reuse(forward, *args, state.agg_weights, state.gramian)
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


def make_gramian_probe(graphdef, tasks: Sequence[Task]):
  """``probe(params, rest, batch) -> [T, T]`` Gramian of the shared gradients.

  Used to log the gradient cosines of runs whose step computes no per-task
  gradients (loss weighting only): the loop calls it on logged steps, so the
  train step itself stays the cost of the summed loss.
  """
  forward = make_forward(graphdef, tasks)

  def probe(params, rest, batch):
    losses, vjp, _ = jax.vjp(lambda p: forward(p, rest, batch), params, has_aux=True)
    jac = jax.vmap(lambda c: vjp(c)[0])(jnp.eye(losses.shape[0], dtype=losses.dtype))
    return gramian(jac["shared"])

  return probe


def make_eval_step(graphdef, tasks: Sequence[Task]):
  """``eval_step(params, rest, batch) -> {task: {metric: stats}, 'loss': ...}``.

  Statistics are sums over the batch's labelled examples, to be added up over
  a split and turned into values with ``metrics.compute_all``.
  """
  tasks = tuple(tasks)

  def eval_step(params, rest, batch):
    model = merge(graphdef, params, rest)
    preds = model(batch["inputs"], train=False)
    losses, counts = task_losses(tasks, preds, batch)
    stats = metrics_lib.batch_stats(tasks, preds, batch)
    return {"stats": stats, "loss_sum": losses * counts, "counts": counts}

  return eval_step


def gradient_cosines(gram: jax.Array, eps: float = 1e-30) -> jax.Array:
  """Pairwise cosine similarity of task gradients from their Gramian."""
  norms = jnp.sqrt(jnp.maximum(jnp.diag(gram), 0.0))
  return gram / jnp.maximum(norms[:, None] * norms[None, :], eps)
