"""Runs vmapped over seeds compute what the training loop computes run by run."""

import numpy as np
import pytest

from benchmarks import many_seeds
from benchmarks import mmoe_synthetic as bench

TINY = ["--protocol", "paper", "--ps", "1.0,0.0", "--seeds", "2", "--steps", "24",
        "--curve-every", "8", "--sample-every", "4", "--batch-size", "8",
        "--num-train", "64", "--num-test", "32"]


def _by_cell(report):
  return {(r["model"], r["p"], r["seed"]): r for r in report["runs"]}


def test_seeds_at_once_equal_one_run_at_a_time_through_the_loop(tmp_path):
  one = _by_cell(bench.main(TINY + ["--at-once", "0", "--out", str(tmp_path / "one")]))
  together = _by_cell(bench.main(TINY + ["--at-once", "2", "--out", str(tmp_path / "all")]))
  assert sorted(one) == sorted(together) and len(one) == 8
  for cell, a in one.items():
    b = together[cell]
    assert b["curve_steps"] == a["curve_steps"] == [8, 16, 24]
    for task in ("y1", "y2"):
      np.testing.assert_allclose(b["curve"][task], a["curve"][task], rtol=2e-5)
      assert b["final_train_mse"][task] == pytest.approx(a["final_train_mse"][task],
                                                         rel=2e-5)
      assert b["test_mse"][task] == pytest.approx(a["test_mse"][task], rel=2e-5)
  # Different seeds are different runs (data and initialisation).
  assert together[("mmoe", 1.0, 0)]["mean_final_train_mse"] != together[
      ("mmoe", 1.0, 1)]["mean_final_train_mse"]


def test_batch_indices_are_the_pipelines_and_bad_arrays_are_refused():
  idx = many_seeds.batch_indices([3, 4], num_records=10, batch_size=4, start=1, stop=4)
  assert idx.shape == (3, 2, 4)
  # Steps 1..3 of seed 3 read stream positions 4..15: epoch 0's last six
  # indices then epoch 1's first six, each epoch a permutation.
  flat = idx[:, 0].reshape(-1)
  assert sorted(flat[:6].tolist() + many_seeds.batch_indices(
      [3], 10, 4, 0, 1)[0, 0].tolist()) == list(range(10))
  assert not np.array_equal(idx[:, 0], idx[:, 1])
  config = bench.make_config(bench.load_config_module(), "hard_sharing", 1.0, 0,
                             bench.parse_args(TINY))
  trainer = many_seeds.ManySeeds(config)
  x = np.zeros((16, 100), np.float32)
  y = np.zeros(16, np.float32)
  with pytest.raises(ValueError, match=r"tasks \['y2'\] missing"):
    trainer.put([{"x": x, "y1": y}])
  with pytest.raises(ValueError, match=r"differ in size: \[8, 16\]"):
    trainer.put([{"x": x, "y1": y, "y2": y}, {"x": x[:8], "y1": y[:8], "y2": y[:8]}])
  with pytest.raises(ValueError, match="2 seeds for 1 runs"):
    trainer.train([0, 1], trainer.put([{"x": x, "y1": y, "y2": y}]))
