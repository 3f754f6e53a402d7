"""Multi-input mode: each task draws its rows from its own source, same step."""

import json

import numpy as np
import pytest

from mtl_jax import data
from tests.data.batches import assert_same_batches as _assert_same_batches
from tests.data.batches import assert_slices_make_up_global
from tests.data.batches import build as _build, take as _take
from mtl_jax import tasks as tasks_lib
from mtl_jax.train import loop

# Sorted source order: "pose" rows come before "shapes" rows.
SHAPES = {"tasks": {"shape": "shape", "sx": "x"}, "split": {"train": "train[:50%]"}}
POSE = {"tasks": ["x", "y"], "split": {"train": "train[50%:]"}}


def _config(sprites_config, **sources):
  return dict(sprites_config, sources=sources or {"shapes": SHAPES, "pose": POSE})


def _ids(batch, task):
  """The examples labelled for ``task``, identified by their x positions."""
  return batch["targets"][task][batch["mask"][task]]


def _split_ids(sprites_config, split):
  """The x positions of ``split``, in order."""
  batch = next(data.build(sprites_config, split, batch_size=200, seed=0,
                          shuffle=False, drop_remainder=False, num_epochs=1))
  return _ids(batch, "x")


def test_batch_concatenates_one_batch_per_source(sprites_config):
  config = _config(sprites_config)
  batch = next(_build(config))
  assert batch["inputs"].shape == (8, 16, 16, 1)
  assert list(batch["targets"]) == list(batch["mask"]) == ["shape", "sx", "x", "y"]
  pose_rows, shapes_rows = [True] * 4 + [False] * 4, [False] * 4 + [True] * 4
  for task, rows in [("x", pose_rows), ("y", pose_rows), ("shape", shapes_rows),
                     ("sx", shapes_rows)]:
    assert batch["mask"][task].tolist() == rows
    assert not batch["targets"][task][~batch["mask"][task]].any()
  assert batch["targets"]["shape"].dtype == np.int32
  assert batch["targets"]["x"].dtype == np.float32
  assert batch["inputs"][:4].any() and batch["inputs"][4:].any()


def test_each_task_reads_its_own_source_once_per_epoch(sprites_config):
  train = _split_ids(sprites_config, "train")  # 96 examples
  config = _config(sprites_config)
  epoch = _take(_build(config), 12)  # 48 examples per source, 4 rows per step
  pose = np.concatenate([_ids(b, "x") for b in epoch])
  shapes = np.concatenate([_ids(b, "sx") for b in epoch])
  np.testing.assert_array_equal(np.sort(pose), np.sort(train[48:]))
  np.testing.assert_array_equal(np.sort(shapes), np.sort(train[:48]))
  assert not np.array_equal(pose, train[48:])  # shuffled


def test_sources_count_their_own_epochs(sprites_config):
  train = _split_ids(sprites_config, "train")
  config = _config(
      sprites_config,
      shapes=dict(SHAPES, split={"train": "train[:25%]"}),  # 24 examples
      pose=dict(POSE, split={"train": "train[25%:]"}))      # 72 examples
  steps = _take(_build(config), 18)
  shapes = np.concatenate([_ids(b, "sx") for b in steps])
  pose = np.concatenate([_ids(b, "x") for b in steps])
  np.testing.assert_array_equal(np.sort(pose), np.sort(train[24:]))
  values, counts = np.unique(shapes, return_counts=True)
  np.testing.assert_array_equal(values, np.sort(train[:24]))
  assert (counts == 3).all()
  epochs = shapes.reshape(3, 24)
  assert not np.array_equal(epochs[0], epochs[1])  # each epoch reshuffled


def test_sources_shuffle_with_their_own_seeds(sprites_config):
  config = _config(sprites_config, a={"tasks": ["x"]}, b={"tasks": {"bx": "x"}})
  batch = next(_build(config, batch_size=32))
  assert not np.array_equal(_ids(batch, "x"), _ids(batch, "bx"))
  again = next(_build(config, batch_size=32))
  np.testing.assert_array_equal(batch["targets"]["bx"], again["targets"]["bx"])
  other = next(_build(config, batch_size=32, seed=1))
  assert not np.array_equal(batch["targets"]["bx"], other["targets"]["bx"])


def test_source_batch_sizes(sprites_config):
  config = _config(sprites_config, shapes=dict(SHAPES, batch_size=2),
                   pose=dict(POSE, batch_size=6))
  batch = next(_build(config))
  assert batch["mask"]["x"].tolist() == [True] * 6 + [False] * 2
  assert batch["mask"]["shape"].tolist() == [False] * 6 + [True] * 2
  with pytest.raises(ValueError, match=r"batch_size \{'pose': 6, 'shapes': 2\}.*10"):
    _build(config, batch_size=10)
  with pytest.raises(ValueError, match=r"batch_size \{'pose': None, 'shapes': 2\}"):
    _build(_config(sprites_config, shapes=dict(SHAPES, batch_size=2), pose=POSE))
  with pytest.raises(ValueError, match=r"9 rows does not split equally.*\['pose', 'shapes'\]"):
    _build(_config(sprites_config), batch_size=9)


def test_state_round_trip(sprites_config):
  config = _config(sprites_config, shapes=dict(SHAPES, split={"train": "train[:25%]"}),
                   pose=dict(POSE, split={"train": "train[25%:]"}))
  iterator = _build(config)
  _take(iterator, 5)  # source "shapes" (6 steps per epoch) near its epoch end
  state = json.loads(json.dumps(iterator.get_state()))
  assert sorted(state["pipeline"]["sources"]) == ["pose", "shapes"]
  assert state["pipeline"]["sources"]["shapes"]["split"] == "train[:25%]"
  expected = _take(iterator, 3)
  restored = _build(config)
  restored.set_state(state)
  _assert_same_batches(_take(restored, 3), expected)
  other = _build(_config(sprites_config))
  with pytest.raises(ValueError, match="sources"):
    other.set_state(state)


@pytest.mark.parametrize("process_count", [2, 3])
def test_process_slices_make_up_the_global_batch(sprites_config, process_count):
  config = _config(sprites_config)
  global_run = _build(config, batch_size=4 * process_count)
  local_runs = [_build(config, batch_size=4, process_index=p,
                       process_count=process_count)
                for p in range(process_count)]
  assert_slices_make_up_global(global_run, local_runs, steps=4)


def test_eval_chains_the_sources(sprites_config):
  config = _config(sprites_config,
                   shapes=dict(SHAPES, split={"test": "test[:10]"}),
                   pose=dict(POSE, split={"test": "test[10:]"}))
  iterator = _build(config, "test", shuffle=False, drop_remainder=False,
                    num_epochs=1)
  batches = list(iterator)
  # "pose" first: 20 examples in 3 batches of 8, then "shapes": 10 in 2.
  assert iterator.num_batches == len(batches) == 5
  counts = {t: [int(b["mask"][t].sum()) for b in batches] for t in ("x", "shape")}
  assert counts == {"x": [8, 8, 4, 0, 0], "shape": [0, 0, 0, 8, 2]}
  test = _split_ids(sprites_config, "test")
  np.testing.assert_array_equal(np.concatenate([_ids(b, "x") for b in batches]),
                                test[10:])
  np.testing.assert_array_equal(np.concatenate([_ids(b, "sx") for b in batches]),
                                test[:10])
  empty = iterator.empty_batch()
  assert sorted(empty["targets"]) == ["shape", "sx", "x", "y"]
  assert not any(m.any() for m in empty["mask"].values())


def test_concat_with_padding_ends_with_the_longest_source(sprites_config):
  config = _config(sprites_config,
                   shapes=dict(SHAPES, split={"test": "test[:10]"}),
                   pose=dict(POSE, split={"test": "test[10:]"}))
  batches = list(_build(config, "test", shuffle=False, drop_remainder=False,
                        num_epochs=1, mix="concat"))
  assert len(batches) == 5  # 20 "pose" examples, 4 per step
  assert [int(b["mask"]["shape"].sum()) for b in batches] == [4, 4, 2, 0, 0]


def test_dataset_tasks_shape_and_sizes(sprites_config):
  config = _config(sprites_config)
  tasks = data.dataset_tasks(config)
  assert list(tasks) == ["shape", "sx", "x", "y"]
  assert tasks["sx"] == data.dataset_tasks(sprites_config)["x"]
  assert data.input_shape(config) == (16, 16, 1)
  assert data.num_examples(config, "train") == 96
  assert data.num_examples(config, "test") == 60  # both sources read all 30
  assert [s["name"] for s in data.sections(config)] == ["sprites", "sprites"]
  declared = tasks_lib.from_config(tasks)
  data.validate_tasks(config, declared)
  data.validate_tasks(dict(config, tasks=["x", "y"]),
                      [t for t in declared if t.name in ("x", "y")])


def test_a_task_subset_drops_sources_left_without_tasks(sprites_config):
  batch = next(_build(dict(_config(sprites_config), tasks=["x", "y"])))
  assert list(batch["mask"]) == ["x", "y"] and batch["mask"]["x"].all()


def test_task_in_two_sources_names_both(sprites_config):
  config = _config(sprites_config, a={"tasks": ["x", "shape"]}, b={"tasks": ["x"]})
  with pytest.raises(ValueError, match=r"Task 'x' comes from sources \['a', 'b'\]"):
    data.dataset_tasks(config)


def test_task_in_no_source_lists_both_sets(sprites_config):
  declared = tasks_lib.from_config({
      "shape": {"kind": "multiclass", "num_classes": 3},
      "colour": {"kind": "multiclass", "num_classes": 5}})
  with pytest.raises(ValueError) as error:
    data.validate_tasks(_config(sprites_config), declared)
  message = str(error.value)
  assert "Task(s) ['colour'] come from no source" in message
  assert "['colour', 'shape']" in message
  assert "{'pose': ['x', 'y'], 'shapes': ['shape', 'sx']}" in message


def test_unknown_dataset_task_lists_both_sets(sprites_config):
  config = _config(sprites_config, a={"tasks": {"hue": "colour", "x": "x"}})
  with pytest.raises(ValueError, match=r"Source 'a': dataset 'sprites' has no "
                     r"task\(s\) \['colour'\]\. Source tasks: \['colour', 'x'\]; "
                     r"dataset tasks: \['orientation', .*'y'\]"):
    data.dataset_tasks(config)


def test_declaration_mismatch_names_the_task(sprites_config):
  declared = tasks_lib.from_config({"sx": {"kind": "regression", "dim": 2}})
  with pytest.raises(ValueError, match="Task 'sx'.*dim=1"):
    data.validate_tasks(_config(sprites_config, shapes=SHAPES), declared)


def test_different_input_shapes_name_the_sources(sprites_config):
  config = _config(sprites_config, a={"tasks": ["x"]},
                   b={"tasks": ["y"], "image_size": 8})
  with pytest.raises(ValueError, match=r"\{'a': \(16, 16, 1\), 'b': \(8, 8, 1\)\}"):
    data.input_shape(config)
  with pytest.raises(ValueError, match="different per-example shapes"):
    _build(config)


def test_bad_source_sections(sprites_config):
  with pytest.raises(ValueError, match="sources is empty"):
    data.dataset_tasks(dict(sprites_config, sources={}))
  with pytest.raises(ValueError, match=r"sources.a: set \['num_threads'\] next to"):
    data.dataset_tasks(_config(sprites_config, a={"tasks": ["x"], "num_threads": 1}))
  with pytest.raises(TypeError, match="sources.a.split must map"):
    data.dataset_tasks(_config(sprites_config, a={"tasks": ["x"], "split": "train"}))
  with pytest.raises(ValueError, match="sources.a.batch_size must be a positive"):
    data.dataset_tasks(_config(sprites_config, a={"tasks": ["x"], "batch_size": 0}))
  with pytest.raises(ValueError, match="image_sise"):
    data.input_shape(_config(sprites_config, a={"tasks": ["x"], "image_sise": 8}))


def test_split_slices(sprites_config):
  train = _split_ids(sprites_config, "train")
  np.testing.assert_array_equal(_split_ids(sprites_config, "train[-10%:]"),
                                train[-10:])  # 9.6 rounds to 10
  np.testing.assert_array_equal(_split_ids(sprites_config, "train[5:20]"),
                                train[5:20])
  records = _split_ids(dict(sprites_config, in_memory=False), "train[90:]")
  np.testing.assert_array_equal(records, train[90:])
  with pytest.raises(ValueError, match="Bad split 'train\\[:5'"):
    data.num_examples(sprites_config, "train[:5")
  with pytest.raises(ValueError, match="selects no examples"):
    data.num_examples(sprites_config, "train[50:10]")


def _multi_input(config):
  """``config`` (tiny sprites, all five tasks) in multi-input mode."""
  config.data.sources = dict(
      category=dict(tasks=["shape", "scale"], split=dict(train="train[:50%]")),
      pose=dict(tasks=["orientation", "x", "y"], split=dict(train="train[50%:]")))
  return config


def test_training_through_the_loop(tiny_sprites_config):
  c = _multi_input(tiny_sprites_config)
  c.train.update(num_steps=4, checkpoint_every=0)
  result = loop.train(c, progress=False)
  assert int(result.state.step) == 4 and result.compilations == 1
  assert set(result.evaluation["test"]) == set(c.tasks)
  # Both sources evaluate on the whole test split: the metrics equal those of
  # the single-dataset config for the same parameters.
  single = tiny_sprites_config.copy_and_resolve_references()
  del single.data["sources"]
  s = loop.setup(single)
  values, losses = loop.evaluate(s, loop.compile_run(s), result.state, "test")
  for task in c.tasks:
    assert losses[task] == pytest.approx(result.eval_losses["test"][task], rel=1e-5)
    for metric, value in values[task].items():
      assert result.evaluation["test"][task][metric] == pytest.approx(
          value, rel=1e-5, abs=1e-6)


def test_sources_may_name_their_own_datasets(tiny_sprites_config):
  """No top-level ``name``: each source names its dataset; the config checks
  (dataset names, prepared data) run per source before compiling."""
  from mtl_jax.train import validate
  c = _multi_input(tiny_sprites_config)
  name = c.data.name
  del c.data["name"]
  for source in c.data.sources.values():
    source["name"] = name
  validate.check_config(c)
  c.data.sources.pose["name"] = "no_such_dataset"
  with pytest.raises(ValueError, match="no_such_dataset"):
    validate.check_config(c)
