"""The grain pipeline: batch format, shuffling, resumable state, per-host
slices, evaluation padding, task subsets."""

import json

import numpy as np
import pytest

from tests.data.batches import assert_same_batches as _assert_same_batches
from tests.data.batches import assert_slices_make_up_global
from tests.data.batches import build as _build, take as _take


def _ids(batch):
  """The examples of a batch, identified by their (unique) x positions."""
  return batch["targets"]["x"][batch["mask"]["x"]]


def test_batch_format(sprites_config):
  batch = next(_build(sprites_config))
  assert batch["inputs"].shape == (8, 16, 16, 1)
  assert batch["inputs"].dtype == np.float32
  assert 0 <= batch["inputs"].min() and batch["inputs"].max() <= 1
  assert batch["inputs"].max() == 1  # white sprites
  targets = batch["targets"]
  assert sorted(targets) == ["orientation", "scale", "shape", "x", "y"]
  assert targets["shape"].dtype == np.int32 and targets["shape"].shape == (8,)
  assert targets["scale"].dtype == np.int32 and targets["scale"].max() < 6
  assert targets["orientation"].dtype == np.float32
  assert targets["orientation"].shape == (8, 2)
  assert targets["x"].dtype == np.float32 and targets["x"].shape == (8,)
  assert all(m.dtype == bool and m.all() for m in batch["mask"].values())


def test_shuffling_is_deterministic_and_differs_per_epoch(sprites_config):
  config = dict(sprites_config)
  epochs = _build(config, batch_size=96, num_epochs=2)
  first, second = next(epochs), next(epochs)
  again = next(_build(config, batch_size=96))
  np.testing.assert_array_equal(first["targets"]["x"], again["targets"]["x"])
  # Each epoch is a permutation of the split, in a different order.
  np.testing.assert_array_equal(np.sort(_ids(first)), np.sort(_ids(second)))
  assert not np.array_equal(_ids(first), _ids(second))
  other_seed = next(_build(config, batch_size=96, seed=1))
  assert not np.array_equal(_ids(first), _ids(other_seed))
  ordered = next(_build(config, batch_size=96, shuffle=False))
  assert not np.array_equal(_ids(first), _ids(ordered))
  np.testing.assert_array_equal(np.sort(_ids(first)), np.sort(_ids(ordered)))


def test_batches_run_across_epoch_boundaries(sprites_config):
  batches = _take(_build(sprites_config, batch_size=40), 12)  # 5 epochs of 96
  epochs = np.concatenate([_ids(b) for b in batches]).reshape(5, 96)
  for epoch in epochs:  # every example once per epoch, none dropped
    np.testing.assert_array_equal(np.sort(epoch), np.sort(epochs[0]))
  assert len({tuple(e) for e in epochs}) == 5  # each epoch in its own order
  with pytest.raises(ValueError, match="num_epochs must be None or >= 1"):
    _build(sprites_config, num_epochs=0)


def test_state_round_trip(sprites_config):
  iterator = _build(sprites_config)
  _take(iterator, 3)
  state = json.loads(json.dumps(iterator.get_state()))
  expected = _take(iterator, 2)
  restored = _build(sprites_config)
  restored.set_state(state)
  _assert_same_batches(_take(restored, 2), expected)


def test_state_round_trip_across_epochs(sprites_config):
  iterator = _build(sprites_config, batch_size=40)
  _take(iterator, 5)  # 200 examples: into the third epoch of 96
  state = iterator.get_state()
  expected = _take(iterator, 3)
  restored = _build(sprites_config, batch_size=40)
  restored.set_state(state)
  _assert_same_batches(_take(restored, 3), expected)


def test_state_from_another_pipeline_raises(sprites_config):
  state = _build(sprites_config).get_state()
  other = _build(sprites_config, seed=3)
  with pytest.raises(ValueError, match="seed"):
    other.set_state(state)


@pytest.mark.parametrize("process_count", [2, 3])
def test_process_slices_make_up_the_global_batch(sprites_config, process_count):
  global_run = _build(sprites_config, batch_size=4 * process_count)
  local_runs = [_build(sprites_config, batch_size=4, process_index=p,
                       process_count=process_count)
                for p in range(process_count)]
  assert_slices_make_up_global(global_run, local_runs, steps=5)


def test_bad_process_index_raises(sprites_config):
  with pytest.raises(ValueError, match="process_index"):
    _build(sprites_config, process_index=2, process_count=2)


def test_eval_pads_the_last_batch_with_masked_rows(sprites_config):
  iterator = _build(sprites_config, "test", shuffle=False, drop_remainder=False,
                    num_epochs=1)
  batches = list(iterator)
  assert iterator.num_batches == len(batches) == 4  # 30 examples, batches of 8
  assert all(b["inputs"].shape == (8, 16, 16, 1) for b in batches)
  last = batches[-1]
  for task, mask in last["mask"].items():
    np.testing.assert_array_equal(mask, [True] * 6 + [False] * 2)
    assert not last["targets"][task][6:].any()
  assert not last["inputs"][6:].any()
  ids = np.concatenate([_ids(b) for b in batches])
  assert len(ids) == len(np.unique(ids)) == 30


def test_eval_padding_across_processes(sprites_config):
  runs = [list(_build(sprites_config, "test", batch_size=4, shuffle=False,
                      drop_remainder=False, num_epochs=1, process_index=p,
                      process_count=2))
          for p in range(2)]
  # 30 examples, global batch 8: 4 steps on every process; the last global
  # batch has 6 real rows, 4 on process 0 and 2 on process 1.
  assert [len(r) for r in runs] == [4, 4]
  assert runs[0][-1]["mask"]["x"].tolist() == [True] * 4
  assert runs[1][-1]["mask"]["x"].tolist() == [True] * 2 + [False] * 2
  ids = np.concatenate([_ids(b) for run in runs for b in run])
  assert len(ids) == len(np.unique(ids)) == 30


def test_drop_remainder_drops_the_partial_batch(sprites_config):
  iterator = _build(sprites_config, batch_size=10, num_epochs=1)
  batches = list(iterator)
  assert iterator.num_batches == len(batches) == 9
  assert all(b["mask"]["x"].all() for b in batches)
  with pytest.raises(ValueError, match="fewer than one global batch"):
    _build(sprites_config, "test", batch_size=31, num_epochs=1)


def test_task_subset(sprites_config):
  batch = next(_build(dict(sprites_config, tasks=("x", "shape"))))
  assert sorted(batch["targets"]) == sorted(batch["mask"]) == ["shape", "x"]
  batch = next(_build(dict(sprites_config, tasks="shape")))
  assert list(batch["targets"]) == ["shape"]


def test_reading_records_matches_in_memory(sprites_config):
  in_memory = _take(_build(sprites_config), 3)
  from_records = _take(_build(dict(sprites_config, in_memory=False)), 3)
  _assert_same_batches(in_memory, from_records)


def test_empty_batch_matches_real_batches(sprites_config):
  with _build(sprites_config) as iterator:
    real, empty = next(iterator), iterator.empty_batch()
  assert not any(m.any() for m in empty["mask"].values())
  for key in ("inputs",):
    assert empty[key].shape == real[key].shape and empty[key].dtype == real[key].dtype
  for task, target in real["targets"].items():
    assert empty["targets"][task].shape == target.shape
    assert empty["targets"][task].dtype == target.dtype
