"""The public API: task declarations, task validation, bad-input errors."""

import dataclasses

import ml_collections
import numpy as np
import pytest

from mtl_jax import data
from mtl_jax import tasks as tasks_lib

FAKE_TASKS = {
    "digit": {"kind": "multiclass", "num_classes": 3, "metrics": ("accuracy",)},
    "size": {"kind": "regression", "dim": 1, "metrics": ("mae",)},
}


def _fake_records(n=20, **bad):
  """Records of a tiny in-memory dataset; ``bad`` = {index: {field: value}}."""
  rng = np.random.default_rng(0)
  records = [{"image": rng.integers(0, 256, (4, 4, 1), dtype=np.uint8),
              "digit": int(i % 3), "size": float(i)} for i in range(n)]
  for index, fields in bad.get("fields", {}).items():
    records[index].update(fields)
  return records


def _register_fake(name, records):
  data.register(data.DatasetSpec(
      name=name, defaults={}, tasks=lambda options: FAKE_TASKS,
      input_shape=lambda options: (4, 4, 1),
      load=lambda options, split, root: records))
  return {"name": name, "data_dir": None}


def _build(config, **overrides):
  args = dict(batch_size=8, seed=0, shuffle=False, drop_remainder=False,
              num_epochs=1)
  args.update(overrides)
  return data.build(config, "train", **args)


def test_dataset_tasks_are_valid_declarations(sprites_config):
  natural = data.dataset_tasks(sprites_config)
  assert sorted(natural) == ["orientation", "scale", "shape", "x", "y"]
  parsed = {t.name: t for t in tasks_lib.from_config(natural)}
  assert parsed["shape"].out_features == 3
  assert parsed["scale"].out_features == 6
  assert parsed["orientation"].out_features == 2
  assert parsed["x"].metrics == ("mae", "r2")


def test_config_dict_is_accepted(sprites_config):
  config = ml_collections.ConfigDict(dict(sprites_config))
  assert data.input_shape(config) == (16, 16, 1)
  assert next(_build(config))["inputs"].shape == (8, 16, 16, 1)


def test_validate_tasks_accepts_a_subset(sprites_config):
  subset = tasks_lib.from_config({"shape": data.dataset_tasks(sprites_config)["shape"]})
  data.validate_tasks(sprites_config, subset)
  data.validate_tasks(dict(sprites_config, tasks=["shape"]), subset)


def test_validate_tasks_lists_both_sets_for_an_unknown_task(sprites_config):
  declared = tasks_lib.from_config({
      "shape": {"kind": "multiclass", "num_classes": 3},
      "colour": {"kind": "multiclass", "num_classes": 5}})
  with pytest.raises(ValueError) as error:
    data.validate_tasks(sprites_config, declared)
  message = str(error.value)
  assert "'colour'" in message
  assert "['colour', 'shape']" in message  # the config's tasks
  assert "['orientation', 'scale', 'shape', 'x', 'y']" in message


@pytest.mark.parametrize("declaration, field", [
    ({"kind": "regression", "dim": 1}, "kind"),
    ({"kind": "multiclass", "num_classes": 4}, "num_classes=4"),
])
def test_validate_tasks_checks_kind_and_size(sprites_config, declaration, field):
  with pytest.raises(ValueError, match=field):
    data.validate_tasks(sprites_config, tasks_lib.from_config({"shape": declaration}))
  regression = tasks_lib.from_config({"orientation": {"kind": "regression", "dim": 1}})
  with pytest.raises(ValueError, match="dim=2"):
    data.validate_tasks(sprites_config, regression)


def test_validate_tasks_checks_the_data_task_subset(sprites_config):
  declared = tasks_lib.from_config({"x": {"kind": "regression"}})
  with pytest.raises(ValueError, match=r"\['shape'\].*\['x'\]"):
    data.validate_tasks(dict(sprites_config, tasks=["shape"]), declared)


def test_build_with_an_unknown_task_lists_both_sets(sprites_config):
  with pytest.raises(ValueError, match=r"colour.*\['colour', 'x'\].*'y'\]"):
    _build(dict(sprites_config, tasks=["x", "colour"]))


def test_unknown_dataset_option_and_split(sprites_config):
  with pytest.raises(ValueError, match="Unknown dataset 'nope'.*sprites"):
    data.input_shape({"name": "nope"})
  with pytest.raises(ValueError, match="image_sise.*image_size"):
    data.input_shape(dict(sprites_config, image_sise=32))
  with pytest.raises(ValueError, match="no split 'dev'"):
    data.num_examples(sprites_config, "dev")


def test_fake_dataset_batches():
  config = _register_fake("fake_ok", _fake_records())
  batches = list(_build(config))
  assert len(batches) == 3
  np.testing.assert_array_equal(batches[0]["targets"]["digit"], [0, 1, 2, 0, 1, 2, 0, 1])
  assert batches[0]["targets"]["size"].dtype == np.float32
  assert batches[2]["mask"]["digit"].tolist() == [True] * 4 + [False] * 4


@pytest.mark.parametrize("value", [3, -1])
def test_out_of_range_label_names_task_and_value(value):
  config = _register_fake(f"fake_range{value}", _fake_records(fields={2: {"digit": value}}))
  with pytest.raises(ValueError, match=rf"Task 'digit': label {value} is out of range"):
    _build(config)


def test_out_of_range_label_in_a_later_batch_raises_while_iterating():
  config = _register_fake("fake_late", _fake_records(fields={17: {"digit": 7}}))
  iterator = _build(config)
  next(iterator), next(iterator)
  with pytest.raises(ValueError, match="Task 'digit': label 7"):
    next(iterator)


def test_wrong_dtype_names_the_feature():
  records = [dict(r, digit=float(r["digit"])) for r in _fake_records()]
  config = _register_fake("fake_dtype", records)
  with pytest.raises(TypeError, match="Feature 'digit': dtype float64"):
    _build(config)
  records = [dict(r, image=r["image"].astype(np.int16)) for r in _fake_records()]
  config = _register_fake("fake_image", records)
  with pytest.raises(TypeError, match="Feature 'image': dtype int16"):
    _build(config)


def test_nan_target_raises():
  config = _register_fake("fake_nan", _fake_records(fields={1: {"size": float("nan")}}))
  with pytest.raises(ValueError, match="Feature 'size': non-finite"):
    _build(config)


def test_wrong_shape_names_the_feature():
  records = [dict(r, image=r["image"][:3]) for r in _fake_records()]
  config = _register_fake("fake_shape", records)
  with pytest.raises(ValueError, match="Feature 'image': example shape"):
    _build(config)


def test_users_datasets_go_through_the_registry():
  spec = data.get_spec("toy")
  with pytest.raises(ValueError, match="Dataset 'toy' is built in"):
    data.register(spec)
  try:
    data.register(dataclasses.replace(spec, name="toy_copy"))
    assert "toy_copy" in data.names() and data.get_spec("toy_copy").name == "toy_copy"
  finally:
    data.REGISTRY.registered.pop("toy_copy", None)
  with pytest.raises(ValueError, match=r"Unknown dataset 'toy_copy'; valid datasets: \["):
    data.get_spec("toy_copy")
