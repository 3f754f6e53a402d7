"""Streaming per-task metrics.

A metric turns a batch into additive sufficient statistics (``stats``) and
the summed statistics of a whole split into a value (``compute``), so
evaluation accumulates exact totals over batches of any size, including
padded final batches (padding rows have mask False). Statistics may be
arrays (a confusion matrix, a histogram): the evaluation adds them
elementwise. The dense kinds' metrics are in :mod:`mtl_jax.losses.dense_metrics`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, NamedTuple

import jax.numpy as jnp
import numpy as np

from mtl_jax.losses import dense_metrics as dm
from mtl_jax.losses.losses import effective_mask

if TYPE_CHECKING:
  from mtl_jax.tasks import Task


class Metric(NamedTuple):
  stats: Callable  # (task, pred, target, mask) -> dict of summable arrays
  compute: Callable  # dict of summed numpy values -> float
  higher_is_better: bool
  kinds: tuple[str, ...]


def _count(mask):
  return mask.sum().astype(jnp.float32)


def _accuracy_stats(task, pred, target, mask):
  mask = effective_mask(task, target, mask)
  if task.kind == "multiclass":
    correct = (jnp.argmax(pred, -1) == target).astype(jnp.float32)
  else:
    pred = pred.reshape(pred.shape[0], task.num_labels)
    target = target.reshape(target.shape[0], task.num_labels)
    correct = ((pred > 0) == (target > 0.5)).astype(jnp.float32).mean(axis=1)
  return {"correct": jnp.where(mask, correct, 0.0).sum(), "n": _count(mask)}


def _errors(task, pred, target, mask):
  mask = effective_mask(task, target, mask)
  pred = pred.reshape(pred.shape[0], task.dim).astype(jnp.float32)
  target = target.reshape(target.shape[0], task.dim).astype(jnp.float32)
  return pred - target, target, mask[:, None]


def _abs_stats(task, pred, target, mask):
  err, _, m = _errors(task, pred, target, mask)
  return {"abs": jnp.where(m, jnp.abs(err), 0.0).sum(), "n": _count(m) * task.dim}


def _sq_stats(task, pred, target, mask):
  err, _, m = _errors(task, pred, target, mask)
  return {"sq": jnp.where(m, err ** 2, 0.0).sum(), "n": _count(m) * task.dim}


def _r2_stats(task, pred, target, mask):
  err, target, m = _errors(task, pred, target, mask)
  return {"sse": jnp.where(m, err ** 2, 0.0).sum(axis=0),
          "sum_y": jnp.where(m, target, 0.0).sum(axis=0),
          "sum_y2": jnp.where(m, target ** 2, 0.0).sum(axis=0),
          "n": _count(m)}


def _f1_stats(task, pred, target, mask):
  mask = effective_mask(task, target, mask)[:, None]
  pred = pred.reshape(pred.shape[0], task.num_labels) > 0
  target = target.reshape(target.shape[0], task.num_labels) > 0.5
  def total(x):
    return jnp.where(mask, x, False).sum().astype(jnp.float32)
  return {"tp": total(pred & target), "fp": total(pred & ~target),
          "fn": total(~pred & target)}


def _ratio(num, den):
  return float(num / den) if den > 0 else float("nan")


def _r2(s):
  n = s["n"]
  if n <= 0:
    return float("nan")
  sst = s["sum_y2"] - s["sum_y"] ** 2 / n
  # Average R^2 over output dimensions; a constant target gives nan.
  with np.errstate(divide="ignore", invalid="ignore"):
    r2 = 1.0 - np.asarray(s["sse"]) / np.asarray(sst)
  return float(np.mean(r2))


METRICS: dict[str, Metric] = {
    "accuracy": Metric(_accuracy_stats, lambda s: _ratio(s["correct"], s["n"]),
                       True, ("multiclass", "binary")),
    "mae": Metric(_abs_stats, lambda s: _ratio(s["abs"], s["n"]), False,
                  ("regression",)),
    "mse": Metric(_sq_stats, lambda s: _ratio(s["sq"], s["n"]), False,
                  ("regression",)),
    "rmse": Metric(_sq_stats, lambda s: float(np.sqrt(_ratio(s["sq"], s["n"]))),
                   False, ("regression",)),
    "r2": Metric(_r2_stats, _r2, True, ("regression",)),
    "f1": Metric(_f1_stats,
                 lambda s: _ratio(2 * s["tp"], 2 * s["tp"] + s["fp"] + s["fn"]),
                 True, ("binary",)),
    # Dense kinds (per pixel, accumulated over the split).
    "miou": Metric(dm.confusion_stats, dm.miou, True, ("segmentation",)),
    "pixel_accuracy": Metric(dm.confusion_stats, dm.pixel_accuracy, True,
                             ("segmentation",)),
    "abs_err": Metric(dm.abs_err_stats, lambda s: _ratio(s["abs"], s["n"]),
                      False, ("depth",)),
    "rel_err": Metric(dm.rel_err_stats, lambda s: _ratio(s["rel"], s["n"]),
                      False, ("depth",)),
    "angle_mean": Metric(dm.angle_sum_stats, lambda s: _ratio(s["sum"], s["n"]),
                         False, ("normals",)),
    "angle_median": Metric(dm.angle_histogram_stats,
                           lambda s: dm.histogram_median(s["hist"]), False,
                           ("normals",)),
    **{name: Metric(dm.within_stats(t),
                    lambda s: 100.0 * _ratio(s["within"], s["n"]), True,
                    ("normals",))
       for name, t in dm.THRESHOLDS.items()},
}


def get(name: str) -> Metric:
  if name not in METRICS:
    raise ValueError(f"Unknown metric {name!r}; valid metrics: {sorted(METRICS)}.")
  return METRICS[name]


def check(name: str, kind: str, *, task: str) -> None:
  """Raises unless metric ``name`` exists and suits a task of ``kind``."""
  if name not in METRICS:
    raise ValueError(f"Task {task!r}: unknown metric {name!r}; valid metrics: "
                     f"{sorted(METRICS)}.")
  if kind not in METRICS[name].kinds:
    raise ValueError(f"Task {task!r}: metric {name!r} does not apply to a {kind} "
                     f"task; it applies to {METRICS[name].kinds}.")


def batch_stats(tasks: tuple[Task, ...], preds, batch) -> dict:
  """``{task: {metric: stats}}`` for one batch (jittable)."""
  return {t.name: {m: get(m).stats(t, preds[t.name], batch["targets"][t.name],
                                   batch["mask"][t.name]) for m in t.metrics}
          for t in tasks}


def compute_all(tasks: tuple[Task, ...], summed: dict) -> dict[str, dict[str, float]]:
  """Metric values from statistics summed over a split."""
  return {t.name: {m: get(m).compute(summed[t.name][m]) for m in t.metrics}
          for t in tasks}
