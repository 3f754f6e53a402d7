"""Masked per-task losses.

Each loss returns per-example values (per-pixel values ``[B, H, W]`` for the
dense kinds, :mod:`mtl_jax.losses.dense`); :func:`masked_mean` averages them
over the examples (pixels) whose mask is set, so a loss is a mean over the
whole batch, and its count (labelled examples, or valid pixels of a dense
task) lets sharded steps and gradient accumulation rebuild that mean. A task
with no labelled example in the batch has loss exactly 0 (and zero
gradient), never NaN, and a NaN in a masked-out target cannot leak into the
loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mtl_jax.losses import dense

if TYPE_CHECKING:
  from mtl_jax.tasks import Task


def _as_2d(x: jax.Array, width: int) -> jax.Array:
  return x.reshape(x.shape[0], width)


def cross_entropy(task: Task, logits, labels):
  """Softmax cross-entropy with integer labels ``[B]``; logits ``[B, C]``."""
  safe = jnp.clip(labels.astype(jnp.int32), 0, task.num_classes - 1)
  return optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), safe)


def sigmoid_cross_entropy(task: Task, logits, labels):
  """Mean over labels of sigmoid cross-entropy; labels in {0, 1}."""
  logits = _as_2d(logits.astype(jnp.float32), task.num_labels)
  labels = _as_2d(labels.astype(jnp.float32), task.num_labels)
  return optax.sigmoid_binary_cross_entropy(logits, labels).mean(axis=1)


def mse(task: Task, pred, target):
  """Mean squared error over the output dimensions."""
  diff = _as_2d(pred.astype(jnp.float32), task.dim) - _as_2d(
      target.astype(jnp.float32), task.dim)
  return jnp.mean(diff ** 2, axis=1)


def l1(task: Task, pred, target):
  """Mean absolute error over the output dimensions."""
  diff = _as_2d(pred.astype(jnp.float32), task.dim) - _as_2d(
      target.astype(jnp.float32), task.dim)
  return jnp.mean(jnp.abs(diff), axis=1)


LOSSES: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "cross_entropy": (cross_entropy, ("multiclass",)),
    "sigmoid_cross_entropy": (sigmoid_cross_entropy, ("binary",)),
    "mse": (mse, ("regression",)),
    "l1": (l1, ("regression",)),
    **dense.LOSSES,
}


def check(name: str, kind: str, *, task: str) -> None:
  """Raises unless loss ``name`` exists and suits a task of ``kind``."""
  if name not in LOSSES:
    raise ValueError(f"Task {task!r}: unknown loss {name!r}; valid losses: "
                     f"{sorted(LOSSES)}.")
  if kind not in LOSSES[name][1]:
    raise ValueError(f"Task {task!r}: loss {name!r} does not apply to a {kind} "
                     f"task; it applies to {LOSSES[name][1]}.")


def effective_mask(task: Task, target, mask) -> jax.Array:
  """The batch mask, minus examples whose label is the task's ignore label.

  For a dense task: bool ``[B, H, W]``, the batch mask ``[B]`` broadcast over
  the pixels AND :func:`mtl_jax.losses.dense.valid_pixels`.
  """
  mask = mask.astype(bool)
  if task.dense:
    return mask[:, None, None] & dense.valid_pixels(task, target)
  if task.ignore_label is not None:
    mask = mask & (target != task.ignore_label)
  return mask


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean of ``values`` over ``mask``; exactly 0 where the mask is empty."""
  values = jnp.where(mask, values, 0.0)
  return values.sum() / jnp.maximum(mask.sum(), 1).astype(values.dtype)


def check_shapes(task: Task, pred, target, mask) -> None:
  """Raises (at trace time) unless predictions, targets and mask fit the task."""
  if task.dense:
    return dense.check_shapes(task, pred, target, mask)
  batch, width = mask.shape[0], task.out_features
  label_width = 1 if task.kind == "multiclass" else width
  size = lambda shape: int(np.prod(shape[1:], dtype=np.int64))
  if (pred.shape[:1] != (batch,) or size(pred.shape) != width
      or target.shape[:1] != (batch,) or size(target.shape) != label_width):
    labels = "[B]" if label_width == 1 else f"[B, {label_width}]"
    raise ValueError(
        f"Task {task.name!r}: predictions {tuple(pred.shape)} and targets "
        f"{tuple(target.shape)} do not fit a {task.kind} task with "
        f"{width} output(s) and a batch of {batch}: expected predictions "
        f"[B, {width}] and targets {labels}.")


def task_loss(task: Task, pred, target, mask) -> tuple[jax.Array, jax.Array]:
  """Masked mean loss of one task and the number of examples it averaged.

  Args:
    task: the task declaration.
    pred: the head's output ``[B, out_features]`` (``[B, H, W,
      out_features]`` for a dense task).
    target: the task's targets for the batch.
    mask: bool ``[B]``, True where the example has a label for this task.

  Returns:
    ``(loss, count)``; ``count`` is the number of labelled examples (valid
    pixels of a dense task) and ``loss`` is 0 when ``count`` is 0.
  """
  check_shapes(task, pred, target, mask)
  mask = effective_mask(task, target, mask)
  if task.kind == "depth":
    target = dense.depth_map(target)
  # Zero the targets of masked-out rows (pixels) first: a NaN there would
  # otherwise reach the gradient through the backward pass of `where`.
  row_mask = mask.reshape(mask.shape + (1,) * (target.ndim - mask.ndim))
  target = jnp.where(row_mask, target, jnp.zeros_like(target))
  per_example = LOSSES[task.loss][0](task, pred, target)
  return masked_mean(per_example, mask), mask.sum()


def task_losses(tasks, preds, batch) -> tuple[jax.Array, jax.Array]:
  """Losses ``[T]`` and label counts ``[T]`` of all tasks, in task order."""
  pairs = [task_loss(t, preds[t.name], batch["targets"][t.name],
                     batch["mask"][t.name]) for t in tasks]
  return jnp.stack([p[0] for p in pairs]), jnp.stack([p[1] for p in pairs])
