"""Masked per-task losses and metrics against hand-computed values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import tasks as tasks_lib
from mtl_jax.losses import metrics as metrics_lib, task_loss, task_losses
from mtl_jax.losses.delta_m import delta_m

CLS, BIN, REG = tasks_lib.from_config({
    "a_cls": dict(kind="multiclass", num_classes=3, ignore_label=-1),
    "b_bin": dict(kind="binary", num_labels=2, metrics=("accuracy", "f1")),
    "c_reg": dict(kind="regression", dim=2, metrics=("mae", "mse", "r2")),
})


def test_cross_entropy_masked_mean_by_hand():
  logits = jnp.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
  labels = jnp.array([0, 0, 2])
  mask = jnp.array([True, True, False])
  loss, count = task_loss(CLS, logits, labels, mask)
  ce0 = math.log(3.0)
  ce1 = -2.0 + math.log(math.exp(2.0) + 2.0)
  assert int(count) == 2
  np.testing.assert_allclose(float(loss), (ce0 + ce1) / 2, rtol=1e-6)


def test_ignore_label_is_excluded():
  logits = jnp.zeros((2, 3))
  loss, count = task_loss(CLS, logits, jnp.array([1, -1]), jnp.array([True, True]))
  assert int(count) == 1
  np.testing.assert_allclose(float(loss), math.log(3.0), rtol=1e-6)


def test_sigmoid_cross_entropy_by_hand():
  logits = jnp.array([[0.0, 1.0]])
  labels = jnp.array([[1.0, 0.0]])
  loss, _ = task_loss(BIN, logits, labels, jnp.array([True]))
  expected = (math.log(2.0) + math.log(1.0 + math.e)) / 2
  np.testing.assert_allclose(float(loss), expected, rtol=1e-6)


def test_mse_by_hand():
  pred = jnp.array([[1.0, 2.0], [0.0, 0.0]])
  target = jnp.array([[0.0, 0.0], [1.0, 1.0]])
  loss, _ = task_loss(REG, pred, target, jnp.array([True, True]))
  np.testing.assert_allclose(float(loss), ((1 + 4) / 2 + (1 + 1) / 2) / 2, rtol=1e-6)


def test_empty_task_is_zero_with_zero_gradient_even_with_nan_targets():
  pred = jnp.ones((2, 2))
  target = jnp.array([[jnp.nan, 0.0], [1.0, jnp.inf]])
  mask = jnp.array([False, False])
  loss, count = task_loss(REG, pred, target, mask)
  assert float(loss) == 0.0 and int(count) == 0
  grad = jax.grad(lambda p: task_loss(REG, p, target, mask)[0])(pred)
  np.testing.assert_array_equal(grad, jnp.zeros_like(pred))


def test_task_losses_are_in_task_order():
  batch = {"targets": {"a_cls": jnp.array([0]), "b_bin": jnp.array([[1.0, 1.0]]),
                       "c_reg": jnp.zeros((1, 2))},
           "mask": {"a_cls": jnp.array([True]), "b_bin": jnp.array([False]),
                    "c_reg": jnp.array([True])}}
  preds = {"a_cls": jnp.zeros((1, 3)), "b_bin": jnp.zeros((1, 2)),
           "c_reg": jnp.full((1, 2), 3.0)}
  losses, counts = task_losses((CLS, BIN, REG), preds, batch)
  np.testing.assert_allclose(losses, [math.log(3.0), 0.0, 9.0], rtol=1e-6)
  np.testing.assert_array_equal(counts, [1, 0, 1])


def _summed(task, chunks):
  stats = [metrics_lib.batch_stats((task,), {task.name: p}, {
      "targets": {task.name: t}, "mask": {task.name: m}}) for p, t, m in chunks]
  total = jax.tree.map(lambda *x: np.sum(np.stack(x), axis=0), *stats)
  return metrics_lib.compute_all((task,), total)[task.name]


def test_streaming_regression_metrics_equal_full_batch_numpy():
  rng = np.random.default_rng(0)
  pred, target = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
  mask = np.ones(10, bool)
  mask[7] = False
  chunks = [(pred[:4], target[:4], mask[:4]), (pred[4:], target[4:], mask[4:])]
  values = _summed(REG, chunks)
  p, t = pred[mask], target[mask]
  np.testing.assert_allclose(values["mae"], np.abs(p - t).mean(), rtol=1e-5)
  np.testing.assert_allclose(values["mse"], ((p - t) ** 2).mean(), rtol=1e-5)
  r2 = 1 - ((p - t) ** 2).sum(0) / ((t - t.mean(0)) ** 2).sum(0)
  np.testing.assert_allclose(values["r2"], r2.mean(), rtol=1e-4)


def test_classification_metrics_by_hand():
  logits = np.array([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0], [2.0, 0, 0]])
  values = _summed(CLS, [(logits, np.array([0, 1, 0, -1]), np.ones(4, bool))])
  assert values["accuracy"] == pytest.approx(2 / 3)
  bin_logits = np.array([[1.0, -1.0], [1.0, 1.0]])
  bin_labels = np.array([[1, 1], [0, 1]])
  values = _summed(BIN, [(bin_logits, bin_labels, np.ones(2, bool))])
  assert values["accuracy"] == pytest.approx(0.5)
  assert values["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))


def test_delta_m_by_hand():
  base = {"a_cls": {"accuracy": 0.8}, "c_reg": {"mae": 0.5}}
  tasks = tasks_lib.from_config({"a_cls": dict(kind="multiclass", num_classes=3),
                                 "c_reg": dict(kind="regression", dim=2)})
  model = {"a_cls": {"accuracy": 0.88}, "c_reg": {"mae": 0.6}}
  # accuracy +10% (better: -10), mae +20% (worse: +20) -> mean +5.
  assert delta_m(tasks, base, model) == pytest.approx(5.0)
  assert delta_m(tasks, base, base) == 0.0
  with pytest.raises(ValueError, match="a_cls"):
    delta_m(tasks, {"a_cls": {"accuracy": 0.0}, "c_reg": {"mae": 0.5}}, model)


@pytest.mark.parametrize("spec, match", [
    (dict(kind="multiclass", num_classes=1), "num_classes >= 2"),
    (dict(kind="ranking"), "kind must be one of"),
    (dict(kind="regression", loss="cross_entropy"), "does not apply to a regression"),
    (dict(kind="regression", metrics=("accuracy",)), "metric 'accuracy' does not apply"),
    (dict(kind="regression", dimm=2), "unknown field"),
])
def test_bad_task_declarations_name_the_task(spec, match):
  with pytest.raises(ValueError, match=match) as info:
    tasks_lib.from_config({"mytask": spec})
  assert "mytask" in str(info.value)


def test_parsing_writes_every_metric_direction_into_the_task():
  (task,) = tasks_lib.from_config({"r": dict(kind="regression", metrics=("mae", "r2"),
                                             higher_is_better={"mae": True})})
  assert dict(task.higher_is_better) == {"mae": True, "r2": True}  # override, default
  assert task.direction("mae") and task.direction("r2")
  assert [t.direction("accuracy") for t in (CLS, BIN)] == [True, True]
  assert not REG.direction("mse")
  with pytest.raises(ValueError, match="'c_reg' has no direction for metric 'accuracy'"):
    REG.direction("accuracy")
