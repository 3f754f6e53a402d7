"""Batch helpers shared by the pipeline tests."""

import numpy as np

from mtl_jax import data


def build(config, split="train", **overrides):
  """``data.build`` with the tests' defaults (batch 8, seed 0, shuffled, endless)."""
  args = dict(batch_size=8, seed=0, shuffle=True, drop_remainder=True,
              num_epochs=None)
  args.update(overrides)
  return data.build(config, split, **args)


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def assert_same_batches(first, second):
  assert len(first) == len(second)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
    for task in a["targets"]:
      np.testing.assert_array_equal(a["targets"][task], b["targets"][task])
      np.testing.assert_array_equal(a["mask"][task], b["mask"][task])


def assert_slices_make_up_global(global_run, local_runs, steps):
  """Each step, the processes' batches concatenated are the global batch
  (inputs, every task's targets and masks)."""
  for _ in range(steps):
    expected = next(global_run)
    parts = [next(run) for run in local_runs]
    np.testing.assert_array_equal(
        np.concatenate([p["inputs"] for p in parts]), expected["inputs"])
    for key in ("targets", "mask"):
      for task in expected[key]:
        np.testing.assert_array_equal(
            np.concatenate([p[key][task] for p in parts]), expected[key][task])
