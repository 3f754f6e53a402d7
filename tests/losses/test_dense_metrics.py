"""Dense metrics (split-level statistics) against numpy float64 references."""

import jax
import numpy as np
import pytest

from mtl_jax import tasks as tasks_lib
from mtl_jax.losses import dense_metrics, metrics as metrics_lib
from mtl_jax.losses.delta_m import delta_m

DEPTH, NORMALS, SEG = tasks_lib.from_config({
    "seg": dict(kind="segmentation", num_classes=4),
    "depth": dict(kind="depth"),
    "normals": dict(kind="normals"),
})
TASKS = (DEPTH, NORMALS, SEG)


def _stats(tasks, preds, batch):
  return jax.device_get(jax.jit(
      lambda p, b: metrics_lib.batch_stats(tasks, p, b))(preds, batch))


def _values(tasks, preds, batch):
  return metrics_lib.compute_all(tasks, _stats(tasks, preds, batch))


def _one(task, pred, target, mask):
  batch = {"targets": {task.name: target}, "mask": {task.name: mask}}
  return _values((task,), {task.name: pred}, batch)[task.name]


# --- segmentation --------------------------------------------------------------


def _pixels_of(confusion):
  """Labels and one-hot logits whose confusion matrix is ``confusion``."""
  gt, pred = [], []
  for i, j in np.ndindex(confusion.shape):
    gt += [i] * confusion[i, j]
    pred += [j] * confusion[i, j]
  n = len(gt)
  logits = np.eye(confusion.shape[0], dtype=np.float32)[pred]
  return logits.reshape(1, 1, n, -1), np.asarray(gt, np.int32).reshape(1, 1, n)


def test_miou_and_pixel_accuracy_of_a_hand_made_confusion_matrix():
  # Class 2 is neither labelled nor predicted (left out of the mean); class 3
  # is labelled once and never predicted correctly (IoU 0).
  confusion = np.array([[3, 1, 0, 0], [0, 2, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]])
  logits, labels = _pixels_of(confusion)
  stats = _stats((SEG,), {"seg": logits},
                 {"targets": {"seg": labels}, "mask": {"seg": np.array([True])}})
  np.testing.assert_array_equal(stats["seg"]["miou"]["confusion"], confusion)
  iou = [3 / (4 + 4 - 3), 2 / (3 + 3 - 2), 0 / (1 + 1 - 0)]
  values = metrics_lib.compute_all((SEG,), stats)["seg"]
  np.testing.assert_allclose(values["miou"], 100 * np.mean(iou), rtol=1e-12)
  np.testing.assert_allclose(values["pixel_accuracy"], 100 * 5 / 8, rtol=1e-12)


def _segmentation_batch(seed, b=4, h=6, w=5, c=4):
  r = np.random.default_rng(seed)
  labels = r.integers(0, c, (b, h, w)).astype(np.int32)
  labels[r.random((b, h, w)) < 0.25] = -1
  logits = r.normal(size=(b, h, w, c)).astype(np.float32)
  mask = np.array([True, False, True, True][:b])
  return logits, labels, mask


def test_segmentation_metrics_on_images_with_ignored_pixels():
  logits, labels, mask = _segmentation_batch(0)
  labels[1] = 99  # a masked-out row: its labels are never read
  valid = mask[:, None, None] & (labels != -1)
  gt, pred = labels[valid], logits.argmax(-1)[valid]
  h = np.zeros((4, 4))
  np.add.at(h, (gt, pred), 1)
  inter, union = np.diag(h), h.sum(0) + h.sum(1) - np.diag(h)
  values = _one(SEG, logits, labels, mask)
  np.testing.assert_allclose(values["miou"], 100 * np.mean(inter / union), rtol=1e-12)
  np.testing.assert_allclose(values["pixel_accuracy"], 100 * np.mean(gt == pred),
                             rtol=1e-12)


# --- depth ---------------------------------------------------------------------


def test_depth_errors_exclude_zeros_and_masked_rows():
  r = np.random.default_rng(1)
  gt = r.uniform(0.5, 4.0, (3, 4, 5)).astype(np.float32)
  gt[r.random(gt.shape) < 0.3] = 0.0
  gt[2] = np.nan
  pred = r.uniform(0.5, 4.0, (3, 4, 5, 1)).astype(np.float32)
  mask = np.array([True, True, False])
  valid = mask[:, None, None] & (np.nan_to_num(gt) != 0)
  p, g = pred[..., 0][valid].astype(np.float64), gt[valid].astype(np.float64)
  values = _one(DEPTH, pred, gt, mask)
  np.testing.assert_allclose(values["abs_err"], np.mean(np.abs(p - g)), rtol=1e-5)
  np.testing.assert_allclose(values["rel_err"], np.mean(np.abs(p - g) / g), rtol=1e-5)
  assert all(np.isfinite(v) for v in values.values())


# --- normals -------------------------------------------------------------------


def _at_angles(degrees, r):
  """Targets of random directions and lengths, predictions at ``degrees`` from them."""
  theta = np.radians(np.asarray(degrees, np.float64))
  n = len(theta)
  g = r.normal(size=(n, 3))
  g /= np.linalg.norm(g, axis=-1, keepdims=True)
  u = np.cross(g, r.normal(size=(n, 3)))
  u /= np.linalg.norm(u, axis=-1, keepdims=True)
  p = np.cos(theta)[:, None] * g + np.sin(theta)[:, None] * u
  scale = r.uniform(0.5, 2.0, (n, 1))
  return (p * scale).astype(np.float32), (g * r.uniform(0.8, 1.2, (n, 1))).astype(np.float32)


def _angle_values(degrees):
  d = np.asarray(degrees, np.float64)
  return {"angle_mean": d.mean(), "angle_median": np.median(d),
          "within_11_25": 100 * np.mean(d < 11.25),
          "within_22_5": 100 * np.mean(d < 22.5), "within_30": 100 * np.mean(d < 30)}


def test_angle_metrics_on_known_normals():
  r = np.random.default_rng(2)
  degrees = [0.0, 3.0, 11.0, 11.5, 20.0, 22.0, 29.0, 31.0, 45.0, 90.0, 135.0, 179.0]
  pred, gt = _at_angles(degrees, r)
  pred, gt = pred.reshape(2, 2, 3, 3), gt.reshape(2, 2, 3, 3)
  gt[1, 1, 2] = 0.0  # a missing normal (its angle 179 is not counted)
  pred = np.concatenate([pred, np.full_like(pred[:1], np.nan)])
  gt = np.concatenate([gt, np.full_like(gt[:1], np.nan)])  # a masked-out row
  values = _one(NORMALS, pred, gt, np.array([True, True, False]))
  expected = _angle_values(degrees[:-1])
  for name, value in expected.items():
    tol = dense_metrics.ANGLE_BIN if name == "angle_median" else 1e-3
    np.testing.assert_allclose(values[name], value, atol=tol, err_msg=name)


def test_angle_median_of_random_normals_is_within_one_bin():
  r = np.random.default_rng(3)
  for n in (400, 401):  # even and odd counts
    pred = r.normal(size=(n, 3)).astype(np.float32)
    gt = r.normal(size=(n, 3)).astype(np.float32)
    p = pred / np.linalg.norm(pred.astype(np.float64), axis=-1, keepdims=True)
    g = gt / np.linalg.norm(gt.astype(np.float64), axis=-1, keepdims=True)
    exact = np.degrees(np.arccos(np.clip((p * g).sum(-1), -1, 1)))
    values = _one(NORMALS, pred.reshape(1, 1, n, 3), gt.reshape(1, 1, n, 3),
                  np.array([True]))
    # One bin, plus float32's error on the angles themselves.
    assert abs(values["angle_median"] - np.median(exact)) < dense_metrics.ANGLE_BIN + 1e-4
    np.testing.assert_allclose(values["angle_mean"], exact.mean(), rtol=1e-5)


@pytest.mark.parametrize("values", [[1.0, 100.0], [5.0], [2.0, 2.001, 2.004, 7.5],
                                    np.random.default_rng(4).uniform(0, 180, 999)])
def test_histogram_median_is_within_one_bin_of_the_exact_median(values):
  values = np.asarray(values, np.float64)
  k = np.floor(values / dense_metrics.ANGLE_BIN).astype(int)
  hist = np.bincount(k, minlength=dense_metrics.ANGLE_BINS)
  estimate = dense_metrics.histogram_median(hist)
  assert abs(estimate - np.median(values)) < dense_metrics.ANGLE_BIN


def test_a_zero_prediction_counts_as_ninety_degrees():
  gt = np.array([[[[0.0, 0.0, 1.0]]]], np.float32)
  values = _one(NORMALS, np.zeros_like(gt), gt, np.array([True]))
  np.testing.assert_allclose(values["angle_mean"], 90.0, rtol=1e-6)


# --- the split -----------------------------------------------------------------


def _dense_batch(seed):
  r = np.random.default_rng(seed)
  logits, labels, mask = _segmentation_batch(seed)
  depth = r.uniform(0.5, 4.0, labels.shape).astype(np.float32)
  depth[r.random(labels.shape) < 0.2] = 0.0
  normals = r.normal(size=labels.shape + (3,)).astype(np.float32)
  normals[r.random(labels.shape) < 0.2] = 0.0
  preds = {"seg": logits, "depth": r.uniform(0.5, 4.0, labels.shape + (1,)).astype(np.float32),
           "normals": r.normal(size=labels.shape + (3,)).astype(np.float32)}
  batch = {"targets": {"seg": labels, "depth": depth, "normals": normals},
           "mask": {name: mask.copy() for name in ("seg", "depth", "normals")}}
  return preds, batch


def test_stats_of_two_half_batches_add_up_to_the_whole_batch():
  preds, batch = _dense_batch(5)
  whole = _stats(TASKS, preds, batch)
  halves = [_stats(TASKS, jax.tree.map(lambda x: x[s], preds),
                   jax.tree.map(lambda x: x[s], batch))
            for s in (slice(0, 1), slice(1, 4))]
  summed = jax.tree.map(np.add, *halves)  # as train.loop.evaluate adds them
  for path, a, b in zip(jax.tree_util.tree_leaves_with_path(summed),
                        jax.tree.leaves(summed), jax.tree.leaves(whole)):
    if np.issubdtype(np.asarray(a).dtype, np.integer):
      np.testing.assert_array_equal(a, b, err_msg=str(path[0]))
    else:
      np.testing.assert_allclose(a, b, rtol=1e-5, err_msg=str(path[0]))
  one = metrics_lib.compute_all(TASKS, summed)
  two = metrics_lib.compute_all(TASKS, whole)
  for t in TASKS:
    for m in t.metrics:
      np.testing.assert_allclose(one[t.name][m], two[t.name][m], rtol=1e-5)


def test_a_split_without_valid_pixels_gives_nan_without_error():
  preds, batch = _dense_batch(6)
  batch["mask"] = {k: np.zeros_like(v) for k, v in batch["mask"].items()}
  values = _values(TASKS, preds, batch)
  assert all(np.isnan(v) for t in values.values() for v in t.values())


def test_delta_m_over_the_nine_nyuv2_metrics():
  names = [(t, m) for t in TASKS for m in t.metrics]
  assert len(names) == 9
  r = np.random.default_rng(7)
  base = {t.name: {} for t in TASKS}
  model = {t.name: {} for t in TASKS}
  expected = []
  for t, m in names:
    b, v = r.uniform(1, 50, 2)
    base[t.name][m], model[t.name][m] = b, v
    higher = m in ("miou", "pixel_accuracy") or m.startswith("within")
    expected.append(100 * (-1 if higher else 1) * (v - b) / b)
  np.testing.assert_allclose(delta_m(TASKS, base, model), np.mean(expected), rtol=1e-12)
