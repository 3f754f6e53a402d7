"""Per-pixel losses of the dense task kinds: segmentation, depth, normals.

Batch format (``B`` examples of ``H x W`` pixels):

* predictions ``[B, H, W, out_features]`` (``num_classes``, 1 or 3 channels);
* segmentation targets int ``[B, H, W]``, the task's ``ignore_label`` (-1
  unless declared) marking unlabelled pixels;
* depth targets float ``[B, H, W]`` (``[B, H, W, 1]`` is accepted), 0 = missing;
* normals targets float ``[B, H, W, 3]``, an all-zero vector = missing.

Each loss returns per-pixel values ``[B, H, W]``;
:func:`mtl_jax.losses.losses.task_loss` averages them over the valid pixels
of the whole batch (:func:`valid_pixels` AND the batch mask), as the
reference code does (MTAN ``utils.model_fit``, LibMTL ``examples/nyu/utils.py``:
the sum over the valid pixels of the batch divided by their number, and
``F.cross_entropy(ignore_index=-1)``'s mean over the labelled pixels). So
a loss is one mean over the pixels of the global batch, whatever the
devices or micro-batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import optax

if TYPE_CHECKING:
  from mtl_jax.tasks import Task

# Smallest norm a vector is divided by (as torch.nn.functional.normalize).
_NORM_EPS = 1e-12


def depth_map(target: jax.Array) -> jax.Array:
  """Depth targets ``[B, H, W]`` (from ``[B, H, W]`` or ``[B, H, W, 1]``)."""
  return target.reshape(target.shape[:3])


def valid_pixels(task: Task, target: jax.Array) -> jax.Array:
  """Bool ``[B, H, W]``: pixels that carry a target.

  Segmentation: label != ``ignore_label``. Depth: depth != 0. Normals: not
  the all-zero vector. MTAN and LibMTL test ``sum over channels != 0`` for
  depth and normals; for normals that also drops a (valid) unit vector whose
  components sum to 0, which we keep.
  """
  if task.kind == "segmentation":
    return target != task.ignore_label
  if task.kind == "depth":
    return depth_map(target) != 0
  return jnp.any(target != 0, axis=-1)


def normalize(x: jax.Array) -> jax.Array:
  """``x / max(||x||, eps)`` over the last axis (finite gradient at 0)."""
  sq = jnp.sum(x * x, axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, _NORM_EPS ** 2))


def pixel_cross_entropy(task: Task, logits, labels):
  """Softmax cross-entropy per pixel: ``-log softmax(logits)[label]``.

  Logits ``[B, H, W, C]``, labels ``[B, H, W]``; the masked mean over the
  labelled pixels equals ``F.cross_entropy(pred, gt, ignore_index=-1)`` of
  LibMTL (MTAN: ``F.nll_loss`` of log-softmax outputs).
  """
  safe = jnp.clip(labels.astype(jnp.int32), 0, task.num_classes - 1)
  return optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), safe)


def depth_l1(task: Task, pred, target):
  """Absolute depth error per pixel ``|pred - gt|``; pred ``[B, H, W, 1]``.

  As MTAN / LibMTL's depth loss: ``sum(|pred - gt| * mask) / sum(mask)``
  with ``mask = gt != 0``.
  """
  del task
  return jnp.abs(depth_map(pred).astype(jnp.float32)
                 - depth_map(target).astype(jnp.float32))


def normal_cosine(task: Task, pred, target):
  """``1 - cos(pred, gt) = 1 - <pred / ||pred||, gt / ||gt||>`` per pixel.

  MTAN (its SegNet heads normalise the output) and LibMTL normalise the
  prediction and take the dot product with the *raw* target, which the
  preprocessed NYUv2 stores as unit vectors. We normalise the target too, so
  the loss is a cosine for targets of any length; on unit-length targets
  both are the same. ``normal_dot`` gives the authors' ``1 - <pred / ||pred||,
  gt>``. A zero prediction has cosine 0 (loss 1) and a finite gradient.
  """
  del task
  pred = normalize(pred.astype(jnp.float32))
  target = normalize(target.astype(jnp.float32))
  return 1.0 - jnp.sum(pred * target, axis=-1)


def normal_dot(task: Task, pred, target):
  """``1 - <pred / ||pred||, gt>`` per pixel: MTAN / LibMTL's normal loss.

  Equals :func:`normal_cosine` on unit-length targets; with other lengths
  the target's norm scales the pixel's weight.
  """
  del task
  pred = normalize(pred.astype(jnp.float32))
  return 1.0 - jnp.sum(pred * target.astype(jnp.float32), axis=-1)


LOSSES = {
    "pixel_cross_entropy": (pixel_cross_entropy, ("segmentation",)),
    "depth_l1": (depth_l1, ("depth",)),
    "normal_cosine": (normal_cosine, ("normals",)),
    "normal_dot": (normal_dot, ("normals",)),
}


def _expected(task: Task) -> tuple[tuple, tuple]:
  """Expected prediction and target shapes (text) of a dense task."""
  target = {"segmentation": ("[B, H, W]",), "depth": ("[B, H, W]", "[B, H, W, 1]"),
            "normals": ("[B, H, W, 3]",)}[task.kind]
  return f"[B, H, W, {task.out_features}]", " or ".join(target)


def shapes_fit(task: Task, pred_shape, target_shape, batch: int) -> bool:
  """True where predictions and targets have the task's dense shapes."""
  pred_shape, target_shape = tuple(pred_shape), tuple(target_shape)
  if len(pred_shape) != 4 or pred_shape[0] != batch:
    return False
  spatial = pred_shape[1:3]
  if task.shape is not None and spatial != tuple(task.shape):
    return False
  if pred_shape[3] != task.out_features:
    return False
  allowed = {"segmentation": [(batch,) + spatial],
             "depth": [(batch,) + spatial, (batch,) + spatial + (1,)],
             "normals": [(batch,) + spatial + (3,)]}[task.kind]
  return target_shape in allowed


def check_shapes(task: Task, pred, target, mask) -> None:
  """Raises (at trace time) unless a dense task's arrays have its shapes."""
  batch = mask.shape[0]
  if mask.ndim == 1 and shapes_fit(task, pred.shape, target.shape, batch):
    return
  want_pred, want_target = _expected(task)
  size = "" if task.shape is None else f" with (H, W) = {tuple(task.shape)}"
  raise ValueError(
      f"Task {task.name!r}: predictions {tuple(pred.shape)}, targets "
      f"{tuple(target.shape)} and mask {tuple(mask.shape)} do not fit a "
      f"{task.kind} task{size}: expected predictions {want_pred}, targets "
      f"{want_target} at the same H, W, and mask [B] (B = {batch}).")
