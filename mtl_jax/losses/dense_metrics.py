"""Metrics of the dense task kinds, accumulated over a whole split.

Every metric reduces a batch to additive statistics (counts as int32, sums
as float32) over the valid pixels of its labelled examples
(:func:`mtl_jax.losses.losses.effective_mask`); the evaluation adds them up
over the split and :func:`compute` turns the totals into the value. So a
value is that of all the split's pixels at once, independent of the batch
size, the padding and the number of devices.

Units follow the published NYUv2 / Cityscapes tables (MTAN, Nash-MTL, FAMO,
LibMTL's papers): mIoU, pixel accuracy and the "within t degrees" fractions
in percent, depth errors in the data's unit, angles in degrees. (The authors'
code returns fractions in [0, 1] for the first three; Delta_m is the same
either way.)

* ``miou``, ``pixel_accuracy`` (segmentation): from the confusion matrix
  ``h[gt, pred]`` ``[C, C]`` of the split's labelled pixels (MTAN's
  ``ConfMatrix``, LibMTL's ``SegMetric``): ``IoU_c = h_cc / (sum_j h_cj +
  sum_i h_ic - h_cc)``, mIoU the mean of ``IoU_c`` over the classes that
  occur in the labels or the predictions of the split; pixel accuracy
  ``trace(h) / sum(h)``. A class absent from both has IoU 0/0: the authors'
  ``torch.mean(iu)`` is then NaN, we leave the class out (as the per-image
  ``compute_miou`` of MTAN's first release did); whenever theirs is finite
  the values are equal. A class predicted but never labelled has IoU 0.
* ``abs_err``, ``rel_err`` (depth): ``sum |pred - gt| / n`` and ``sum |pred
  - gt| / gt / n`` over the split's valid pixels (gt != 0). The authors
  average per-batch pixel means (LibMTL weighted by the images per batch,
  MTAN unweighted), i.e. ``sum_b w_b e_b`` with ``w_b`` the batch's share of
  the images instead of ``n_b / n``, its share of the valid pixels; the two
  agree when every image has as many valid pixels.
* ``angle_mean``, ``angle_median``, ``within_11_25``, ``within_22_5``,
  ``within_30`` (normals): the angle between prediction and target, ``atan2(
  ||p x g||, p . g)`` in degrees (the authors' ``acos(clamp(p . g))`` on
  normalised vectors, without acos's loss of precision near 0; a zero
  prediction has angle 90). Mean, median, and percent of pixels with angle
  ``< t`` (strictly, as ``np.mean(error < t)``). The median is not additive:
  its statistic is a histogram of :data:`ANGLE_BINS` bins of
  :data:`ANGLE_BIN` degrees on [0, 180]; see :func:`histogram_median` for
  its bound (< 0.01 degree from the exact median of the split).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax.numpy as jnp
import numpy as np

from mtl_jax.losses import dense
from mtl_jax.losses.losses import effective_mask

if TYPE_CHECKING:
  from mtl_jax.tasks import Task

ANGLE_BIN = 0.01  # degrees: width of a histogram bin of the median
ANGLE_BINS = 18000  # bins covering [0, 180] degrees
THRESHOLDS = {"within_11_25": 11.25, "within_22_5": 22.5, "within_30": 30.0}


def _count(valid):
  return valid.sum().astype(jnp.int32)


def _ratio(num, den, scale=1.0):
  return float(scale * num / den) if den > 0 else float("nan")


# --- segmentation --------------------------------------------------------------


def confusion_stats(task: Task, pred, target, mask) -> dict:
  """``{"confusion": int32 [C, C]}``, rows labels, columns predicted classes."""
  valid = effective_mask(task, target, mask)
  c = task.num_classes
  labels = jnp.clip(target.astype(jnp.int32), 0, c - 1)
  index = jnp.where(valid, labels * c + jnp.argmax(pred, axis=-1), c * c)
  counts = jnp.bincount(index.reshape(-1), length=c * c + 1)[:c * c]
  return {"confusion": counts.reshape(c, c).astype(jnp.int32)}


def miou(stats) -> float:
  """Mean IoU in percent over the classes present in labels or predictions."""
  h = np.asarray(stats["confusion"], np.float64)
  inter = np.diag(h)
  union = h.sum(0) + h.sum(1) - inter
  present = union > 0
  if not present.any():
    return float("nan")
  return float(100.0 * np.mean(inter[present] / union[present]))


def pixel_accuracy(stats) -> float:
  """Percent of labelled pixels whose predicted class is the label."""
  h = np.asarray(stats["confusion"], np.float64)
  return _ratio(np.trace(h), h.sum(), 100.0)


# --- depth ---------------------------------------------------------------------


def _depth_errors(task, pred, target, mask):
  valid = effective_mask(task, target, mask)
  gt = jnp.where(valid, dense.depth_map(target).astype(jnp.float32), 1.0)
  err = jnp.abs(dense.depth_map(pred).astype(jnp.float32) - gt)
  return err, gt, valid


def abs_err_stats(task: Task, pred, target, mask) -> dict:
  err, _, valid = _depth_errors(task, pred, target, mask)
  return {"abs": jnp.where(valid, err, 0.0).sum(), "n": _count(valid)}


def rel_err_stats(task: Task, pred, target, mask) -> dict:
  err, gt, valid = _depth_errors(task, pred, target, mask)
  return {"rel": jnp.where(valid, err / gt, 0.0).sum(), "n": _count(valid)}


# --- normals -------------------------------------------------------------------


def angles(task: Task, pred, target, mask):
  """Angles in degrees ``[B, H, W]`` and the valid pixels ``[B, H, W]``."""
  valid = effective_mask(task, target, mask)
  gt = jnp.where(valid[..., None], target.astype(jnp.float32), 0.0)
  p = dense.normalize(pred.astype(jnp.float32))
  g = dense.normalize(gt)
  sin = jnp.linalg.norm(jnp.cross(p, g), axis=-1)
  cos = jnp.sum(p * g, axis=-1)
  angle = jnp.degrees(jnp.arctan2(sin, cos))
  angle = jnp.where(jnp.any(pred != 0, axis=-1), angle, 90.0)
  return angle, valid


def angle_sum_stats(task: Task, pred, target, mask) -> dict:
  angle, valid = angles(task, pred, target, mask)
  return {"sum": jnp.where(valid, angle, 0.0).sum(), "n": _count(valid)}


def angle_histogram_stats(task: Task, pred, target, mask) -> dict:
  """``{"hist": int32 [ANGLE_BINS]}``: bin ``k`` counts angles in ``[k, k+1) * ANGLE_BIN``."""
  angle, valid = angles(task, pred, target, mask)
  k = jnp.clip(jnp.floor(angle / ANGLE_BIN), 0, ANGLE_BINS - 1).astype(jnp.int32)
  k = jnp.where(valid, k, ANGLE_BINS)
  hist = jnp.bincount(k.reshape(-1), length=ANGLE_BINS + 1)[:ANGLE_BINS]
  return {"hist": hist.astype(jnp.int32)}


def within_stats(threshold: float):
  """Stats of the pixels whose angle is below ``threshold`` degrees."""
  def stats(task: Task, pred, target, mask) -> dict:
    angle, valid = angles(task, pred, target, mask)
    return {"within": _count(valid & (angle < threshold)), "n": _count(valid)}
  return stats


def histogram_median(hist, width: float = ANGLE_BIN) -> float:
  """Median of the values counted in ``hist`` (bin ``k``: ``[k w, (k+1) w)``).

  With ``n`` values ``a_1 <= ... <= a_n`` the median is ``a_{(n+1)/2}`` (odd
  ``n``) or ``(a_{n/2} + a_{n/2+1}) / 2`` (even ``n``), as ``np.median``.
  Each ``a_r`` is placed inside its bin ``k`` by linear interpolation,
  ``(k + (r - N_{k-1} - 1/2) / h_k) w`` with ``N_{k-1}`` the count below the
  bin; since ``a_r`` and its estimate lie in the same bin, the result is
  less than one bin width ``w`` (0.01 degree) from the exact median.
  """
  h = np.asarray(hist, np.int64)
  n = int(h.sum())
  if n <= 0:
    return float("nan")
  cum = np.cumsum(h)

  def at(rank: int) -> float:
    k = int(np.searchsorted(cum, rank))  # first bin with cum >= rank
    below = int(cum[k - 1]) if k else 0
    return (k + (rank - below - 0.5) / h[k]) * width

  return float(0.5 * (at((n + 1) // 2) + at(n // 2 + 1)))
