"""Two processes on 127.0.0.1 (gloo CPU collectives) end where one process does."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import portpicker

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _launch(data_dir, workdir, out, num, pid, port):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  return subprocess.Popen(
      [sys.executable, "-m", "tests.train.multihost_run", data_dir, str(workdir), str(out),
       str(num), str(pid), str(port)],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(proc):
  out, _ = proc.communicate(timeout=600)
  assert proc.returncode == 0, out[-4000:]


def test_two_processes_match_one(data_dir, tmp_path):
  # Generate the data once, before two processes race for it.
  single = _launch(data_dir, tmp_path / "single", tmp_path / "single.npz", 1, 0, 0)
  _wait(single)
  port = portpicker.pick_unused_port()
  procs = [_launch(data_dir, tmp_path / "multi", tmp_path / "multi.npz", 2, i, port)
           for i in range(2)]
  for p in procs:
    _wait(p)
  a, b = np.load(tmp_path / "single.npz"), np.load(tmp_path / "multi.npz")
  assert set(a.files) == set(b.files)
  for key in a.files:
    np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-6, err_msg=key)
