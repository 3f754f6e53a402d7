"""A checkpoint saved on 8 forced host devices restores on 1 and on 2."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_checkpoint_from_8_devices_restores_on_1_and_2(data_dir, tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-m", "tests.train.reshard_run", data_dir, str(tmp_path)],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["split_on_8"], "FSDP did not split any parameter on 8 devices"
  for n in (1, 2):
    assert result[f"restore_diff_{n}"] == 0.0, result
    assert result[f"devices_{n}"] == [n], result
    assert result[f"step_{n}"] == 6, result
    assert result[f"resume_diff_{n}"] <= 1e-6, result
