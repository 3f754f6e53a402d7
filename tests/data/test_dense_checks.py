"""Dense task declarations and the checks of their targets."""

import numpy as np
import pytest

from mtl_jax import tasks as tasks_lib
from mtl_jax.data import catalog, checks, pipeline

H, W = 4, 5
NATURAL = {"seg": catalog.segmentation(3, shape=(H, W)),
           "depth": catalog.depth(shape=(H, W)),
           "normals": catalog.normals(shape=(H, W))}


def _tasks(**overrides):
  spec = {"seg": dict(kind="segmentation", num_classes=3),
          "depth": dict(kind="depth"), "normals": dict(kind="normals")}
  for name, fields in overrides.items():
    spec[name] = dict(spec[name], **fields)
  return tasks_lib.from_config(spec)


def test_catalog_declarations_are_valid_task_declarations():
  parsed = {t.name: t for t in tasks_lib.from_config(NATURAL)}
  assert parsed["seg"].shape == (H, W) and parsed["seg"].ignore_label == -1
  assert parsed["seg"].metrics == ("miou", "pixel_accuracy")
  assert parsed["normals"].out_features == 3
  checks.check_declarations(tuple(parsed.values()), NATURAL, "d")


def test_check_declarations_accepts_dense_tasks_with_or_without_a_shape():
  checks.check_declarations(_tasks(), NATURAL, "d")
  checks.check_declarations(_tasks(depth=dict(shape=(H, W))), NATURAL, "d")


@pytest.mark.parametrize("tasks,natural,match", [
    (dict(seg=dict(num_classes=4)), {}, "num_classes=4; dataset 'd' has num_classes=3"),
    (dict(depth=dict(shape=(H, W + 1))), {}, r"shape=\(4, 6\); dataset 'd' has shape=\(4, 5\)"),
    (dict(seg=dict(ignore_label=255)), {}, "ignore_label=255; dataset 'd' has ignore_label=-1"),
    ({}, dict(seg=catalog.segmentation(3, shape=(H, W), ignore_label=255)),
     "ignore_label=-1; dataset 'd' has ignore_label=255"),
    ({}, dict(normals={"kind": "normals"}), r"'normals': a normals declaration needs shape=\(H, W\)"),
    ({}, dict(depth={"kind": "regression"}), "kind 'depth'; dataset 'd' has kind 'regression'"),
])
def test_mismatched_declarations_name_the_task(tasks, natural, match):
  with pytest.raises(ValueError, match=match):
    checks.check_declarations(_tasks(**tasks), dict(NATURAL, **natural), "d")


def test_an_unset_ignore_label_is_minus_one_on_both_sides():
  checks.check_declarations(_tasks(), dict(NATURAL, seg={
      "kind": "segmentation", "num_classes": 3, "shape": (H, W)}), "d")


def test_target_shapes_and_dtypes():
  assert checks.target_shape(NATURAL["seg"]) == (H, W)
  assert checks.target_shape(NATURAL["depth"]) == (H, W)
  assert checks.target_shape(NATURAL["normals"]) == (H, W, 3)
  assert checks.target_dtype(NATURAL["seg"]) == np.int32
  assert checks.target_dtype(NATURAL["depth"]) == np.float32


def test_valid_dense_targets_are_converted():
  labels = np.full((2, H, W), 2, np.int64)
  labels[0, 0, 0] = -1
  out = checks.targets("seg", NATURAL["seg"], labels)
  assert out.dtype == np.int32 and out.shape == (2, H, W)
  uint8 = checks.targets("seg", catalog.segmentation(3, shape=(H, W), ignore_label=255),
                         np.full((2, H, W), 255, np.uint8))
  assert uint8.dtype == np.int32 and (uint8 == 255).all()
  depth = checks.targets("depth", NATURAL["depth"], np.ones((2, H, W, 1), np.float64))
  assert depth.dtype == np.float32 and depth.shape == (2, H, W)
  normals = checks.targets("normals", NATURAL["normals"], np.zeros((2, H, W, 3), np.float32))
  assert normals.shape == (2, H, W, 3)


@pytest.mark.parametrize("name,values,error,match", [
    ("seg", np.full((1, H, W), 3), ValueError, r"'seg': label 3 is out of range \[0, 2\]"),
    ("seg", np.full((1, H, W), -2), ValueError, "label -2 is out of range.*ignore_label"),
    ("seg", np.zeros((1, H, W), np.float32), TypeError, "'seg': dtype float32"),
    ("seg", np.zeros((1, W, H), np.int32), ValueError, r"'seg': example shape \(5, 4\), expected \(4, 5\)"),
    ("depth", np.full((1, H, W), -1.0), ValueError, "'depth': depth -1.0 is negative"),
    ("depth", np.full((1, H, W), np.nan), ValueError, "'depth': non-finite value nan"),
    ("depth", np.zeros((1, H, W, 2)), ValueError, r"'depth': example shape \(4, 5, 2\)"),
    ("normals", np.zeros((1, H, W)), ValueError, r"'normals': example shape \(4, 5\), expected \(4, 5, 3\)"),
    ("normals", np.full((1, H, W, 3), np.inf), ValueError, "'normals': non-finite value inf"),
    ("normals", np.zeros((1, H, W, 3), np.int32), TypeError, "'normals': dtype int32"),
])
def test_bad_dense_targets_give_one_line(name, values, error, match):
  with pytest.raises(error, match=match) as err:
    checks.targets(name, NATURAL[name], values)
  assert "\n" not in str(err.value)


def test_collate_reads_dense_records_and_pads():
  r = np.random.default_rng(0)
  records = [{"image": r.random((H, W, 3)).astype(np.float32),
              "seg": r.integers(-1, 3, (H, W)), "depth": r.random((H, W, 1)),
              "normals": r.normal(size=(H, W, 3))} for _ in range(3)]
  collate = pipeline.Collate(records, NATURAL, "image", (H, W, 3))
  batch = collate(np.array([2, 0, -1]))
  assert batch["targets"]["seg"].dtype == np.int32
  assert batch["targets"]["seg"].shape == (3, H, W)
  assert batch["targets"]["depth"].shape == (3, H, W)
  np.testing.assert_array_equal(batch["targets"]["seg"][0], records[2]["seg"])
  np.testing.assert_array_equal(batch["mask"]["normals"], [True, True, False])
