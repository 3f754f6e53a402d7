"""Dense (per-pixel) losses against numpy float64 references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import tasks as tasks_lib
from mtl_jax.losses import task_loss, task_losses
from mtl_jax.train.step import make_counts

B, H, W, C = 4, 5, 6, 3
DEPTH, NORMALS, SEG = tasks_lib.from_config({
    "seg": dict(kind="segmentation", num_classes=C),
    "depth": dict(kind="depth"),
    "normals": dict(kind="normals"),
})
TASKS = (DEPTH, NORMALS, SEG)
ROWS = np.array([True, True, False, True])


def _batch(seed=0):
  """Predictions and targets with unlabelled pixels, and NaN in masked row 2."""
  r = np.random.default_rng(seed)
  labels = r.integers(0, C, (B, H, W))
  labels[r.random((B, H, W)) < 0.3] = -1
  depth = r.uniform(0.5, 5.0, (B, H, W)).astype(np.float32)
  depth[r.random((B, H, W)) < 0.3] = 0.0
  normals = r.normal(size=(B, H, W, 3)).astype(np.float32)
  normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
  normals[r.random((B, H, W)) < 0.3] = 0.0
  normals[0, 0, 0] = (0.6, -0.8, 0.2) / np.sqrt(1.04)  # sums to 0: valid here
  depth[2], normals[2] = np.nan, np.nan
  preds = {"seg": r.normal(size=(B, H, W, C)).astype(np.float32),
           "depth": r.normal(2.0, 1.0, (B, H, W, 1)).astype(np.float32),
           "normals": r.normal(size=(B, H, W, 3)).astype(np.float32)}
  batch = {"targets": {"seg": labels.astype(np.int32), "depth": depth,
                       "normals": normals},
           "mask": {name: ROWS.copy() for name in ("seg", "depth", "normals")}}
  return preds, batch


def _valid(task, target):
  rows = ROWS[:, None, None]
  if task.kind == "segmentation":
    return rows & (target != -1)
  if task.kind == "depth":
    return rows & (np.nan_to_num(target) != 0)
  return rows & np.any(np.nan_to_num(target) != 0, axis=-1)


def _reference(task, pred, target):
  """Per-pixel float64 losses (NaN where invalid) and the valid mask."""
  pred = pred.astype(np.float64)
  valid = _valid(task, target)
  if task.kind == "segmentation":
    logp = pred - np.log(np.exp(pred).sum(-1, keepdims=True))
    per = -np.take_along_axis(logp, np.clip(target, 0, C - 1)[..., None], -1)[..., 0]
  elif task.kind == "depth":
    per = np.abs(pred[..., 0] - target)
  else:
    p = pred / np.linalg.norm(pred, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):  # zero targets: invalid pixels
      g = target / np.linalg.norm(target, axis=-1, keepdims=True)
    per = 1.0 - (p * g).sum(-1)
  return per, valid


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.kind)
def test_loss_is_the_mean_over_valid_pixels_of_the_batch(task):
  preds, batch = _batch()
  target = batch["targets"][task.name]
  loss, count = task_loss(task, preds[task.name], target, batch["mask"][task.name])
  per, valid = _reference(task, preds[task.name], target)
  assert int(count) == valid.sum() > 0
  np.testing.assert_allclose(float(loss), per[valid].mean(), rtol=1e-5)


def test_segmentation_ignores_minus_one_by_default_and_a_declared_label():
  assert SEG.ignore_label == -1
  seg255, = tasks_lib.from_config(
      {"s": dict(kind="segmentation", num_classes=2, ignore_label=255)})
  labels = np.array([[[0, 255], [1, 1]]], np.int32)
  logits = np.zeros((1, 2, 2, 2), np.float32)
  loss, count = task_loss(seg255, logits, labels, np.array([True]))
  assert int(count) == 3
  np.testing.assert_allclose(float(loss), np.log(2.0), rtol=1e-6)


def test_depth_accepts_targets_with_a_channel_axis():
  preds, batch = _batch()
  target = batch["targets"]["depth"]
  flat = task_loss(DEPTH, preds["depth"], target, ROWS)
  channel = task_loss(DEPTH, preds["depth"], target[..., None], ROWS)
  np.testing.assert_array_equal(np.asarray(flat), np.asarray(channel))


def test_normal_dot_is_the_authors_loss_with_the_raw_target():
  normals_dot, = tasks_lib.from_config({"n": dict(kind="normals", loss="normal_dot")})
  preds, batch = _batch()
  target = 2.0 * batch["targets"]["normals"]  # not unit length
  loss, _ = task_loss(normals_dot, preds["normals"], target, ROWS)
  p = preds["normals"].astype(np.float64)
  p /= np.linalg.norm(p, axis=-1, keepdims=True)
  valid = _valid(NORMALS, target)
  expected = 1.0 - (p * target).sum(-1)[valid].mean()
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  # On unit targets both losses agree.
  unit = task_loss(normals_dot, preds["normals"], batch["targets"]["normals"], ROWS)[0]
  cos = task_loss(NORMALS, preds["normals"], batch["targets"]["normals"], ROWS)[0]
  np.testing.assert_allclose(float(unit), float(cos), rtol=1e-5)


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.kind)
def test_masked_rows_and_invalid_pixels_get_zero_gradient(task):
  preds, batch = _batch()
  target = batch["targets"][task.name]
  grad = jax.grad(lambda p: task_loss(task, p, target, ROWS)[0])(preds[task.name])
  grad = np.asarray(grad)
  valid = _valid(task, target)
  assert np.isfinite(grad).all()
  assert np.all(grad[~valid] == 0)
  assert np.all(np.abs(grad[valid]).sum(-1) > 0)


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.kind)
def test_empty_task_is_zero_with_a_finite_zero_gradient(task):
  preds, batch = _batch()
  target = np.full_like(batch["targets"][task.name],
                        -1 if task.kind == "segmentation" else np.nan)
  for mask in (np.zeros(B, bool), ROWS):  # no row, or rows without a valid pixel
    if task.kind != "segmentation" and mask.any():
      target = np.zeros_like(target)
    f = lambda p: task_loss(task, p, target, mask)[0]
    loss, count = task_loss(task, preds[task.name], target, mask)
    assert float(loss) == 0.0 and int(count) == 0
    grad = np.asarray(jax.grad(f)(preds[task.name]))
    assert np.all(grad == 0)


def test_zero_prediction_has_a_finite_normal_loss_and_gradient():
  _, batch = _batch()
  pred = np.zeros((B, H, W, 3), np.float32)
  f = lambda p: task_loss(NORMALS, p, batch["targets"]["normals"], ROWS)[0]
  np.testing.assert_allclose(float(f(pred)), 1.0, rtol=1e-6)
  assert np.isfinite(np.asarray(jax.grad(f)(pred))).all()


def test_make_counts_equals_the_counts_of_task_losses():
  preds, batch = _batch()
  _, counts = task_losses(TASKS, preds, batch)
  expected = [_valid(t, batch["targets"][t.name]).sum() for t in TASKS]
  np.testing.assert_array_equal(np.asarray(make_counts(TASKS)(batch)), counts)
  np.testing.assert_array_equal(np.asarray(counts), expected)


def test_half_batch_loss_sums_rebuild_the_whole_batch_loss():
  """What gradient accumulation does: sums of micro-batches / global counts."""
  preds, batch = _batch()
  whole, counts = task_losses(TASKS, preds, batch)
  sums = 0.0
  for part in (slice(0, 2), slice(2, 4)):
    sub = jax.tree.map(lambda x: x[part], batch)
    losses, n = task_losses(TASKS, jax.tree.map(lambda x: x[part], preds), sub)
    sums = sums + np.asarray(losses, np.float64) * np.asarray(n)
  np.testing.assert_allclose(sums / np.asarray(counts), np.asarray(whole), rtol=1e-5)


def test_jit_equals_eager():
  preds, batch = _batch()
  eager = task_losses(TASKS, preds, batch)
  jitted = jax.jit(lambda p, b: task_losses(TASKS, p, b))(preds, batch)
  np.testing.assert_allclose(np.asarray(jitted[0]), np.asarray(eager[0]), rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(jitted[1]), np.asarray(eager[1]))


@pytest.mark.parametrize("task,pred_shape,target_shape", [
    (SEG, (B, H, W, C + 1), (B, H, W)),       # channels
    (SEG, (B, H, W, C), (B, H, W, 1)),        # target rank
    (DEPTH, (B, H, W, 1), (B, H + 1, W)),     # spatial
    (DEPTH, (B, H, W), (B, H, W)),            # prediction rank
    (NORMALS, (B, H, W, 3), (B, H, W)),       # target vectors
    (NORMALS, (B - 1, H, W, 3), (B - 1, H, W, 3)),  # batch
])
def test_wrong_shapes_give_one_line_naming_the_task(task, pred_shape, target_shape):
  dtype = jnp.int32 if task.kind == "segmentation" else jnp.float32
  with pytest.raises(ValueError, match=f"Task '{task.name}'") as err:
    task_loss(task, jnp.zeros(pred_shape), jnp.zeros(target_shape, dtype), ROWS)
  assert "\n" not in str(err.value)


def test_declared_shape_is_checked_against_the_predictions():
  seg, = tasks_lib.from_config(
      {"s": dict(kind="segmentation", num_classes=C, shape=(H, W + 1))})
  with pytest.raises(ValueError, match=r"'s'.*\(H, W\) = \(5, 7\)"):
    task_loss(seg, jnp.zeros((B, H, W, C)), jnp.zeros((B, H, W), jnp.int32), ROWS)


@pytest.mark.parametrize("spec,match", [
    (dict(kind="segmentation", num_classes=1), "num_classes >= 2"),
    (dict(kind="depth", ignore_label=0), "ignore_label does not apply"),
    (dict(kind="depth", shape=(4,)), r"shape must be \(H, W\)"),
    (dict(kind="normals", shape=(4, 0)), r"shape must be \(H, W\)"),
    (dict(kind="regression", shape=(4, 4)), "shape applies to dense"),
    (dict(kind="depth", loss="normal_cosine"), "does not apply to a depth"),
    (dict(kind="normals", metrics=("miou",)), "does not apply to a normals"),
])
def test_bad_dense_declarations_are_refused(spec, match):
  with pytest.raises(ValueError, match=match):
    tasks_lib.from_config({"t": spec})


def test_dense_task_fields():
  assert [t.out_features for t in TASKS] == [1, 3, C]
  assert all(t.dense for t in TASKS)
  assert NORMALS.direction("within_11_25") and not NORMALS.direction("angle_median")
  assert SEG.direction("miou") and not DEPTH.direction("rel_err")
  seg, = tasks_lib.from_config({"s": dict(kind="segmentation", num_classes=2,
                                          shape=[16, 8])})
  assert seg.shape == (16, 8)
