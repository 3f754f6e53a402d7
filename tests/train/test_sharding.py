"""Sharded training on 8 forced host devices equals one device."""

import json
import os
import subprocess
import sys
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run(data_dir, workdir, method, *extra):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-m", "tests.train.sharded_run", data_dir, str(workdir), method,
       *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method,option", [("none", ""), ("mgda", "accumulate")])
def test_data_parallel_equals_single_device(data_dir, tmp_path, method, option):
  """With ``accumulate``, 8 devices x 2 micro-batches vs one whole batch."""
  result = _run(data_dir, tmp_path, method, *([option] if option else []))
  assert result["max_diff"] <= 1e-6, result
  assert set(result["devices"]) == {8}
  assert result["metrics_1"] == result["metrics_8"]


def test_fsdp_splits_parameters_and_equals_single_device(data_dir, tmp_path):
  result = _run(data_dir, tmp_path, "none", "fsdp")
  assert result["max_diff"] <= 1e-6, result
  assert any(result["split"]), "no parameter was split over the devices"


def test_accumulation_moves_no_batch_rows_between_devices():
  """Strided micro-batches are local slices: no all-gather or all-to-all.

  (Contiguous micro-batches compile to all-gathers of the batch.) The only
  collectives left are the all-reduces of losses, counts and gradients.
  """
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-m", "tests.train.sharded_run", "collectives"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  counts = json.loads(out.stdout.strip().splitlines()[-1])
  assert counts["all-reduce"] > 0, counts
  assert counts["all-gather"] == counts["all-to-all"] == counts["collective-permute"] == 0, counts
