"""Checkpoint faults, each survived: stale temporary directories, failed
asynchronous writes, corrupt files, unsealed steps, ``max_to_keep=1`` crashes,
mismatched runs, and the SIGTERM handler. In-process, on a tiny pytree."""

import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from orbax.checkpoint._src.handlers import json_checkpoint_handler as jh

from mtl_jax.train import checkpoint, signals
from mtl_jax.train.checkpoint import (Checkpointer, CheckpointWriteError,
                                      CorruptCheckpointError)

# Orbax's failed (injected) writes leave a callback for a closed asyncio loop,
# reported whenever it is garbage-collected; it is harmless.
pytestmark = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning")

META = {"tasks": ["a", "b"], "process_count": 1, "config": "{}"}


def _state(step):
  return {"w": jnp.arange(64, dtype=jnp.float32) * step,
          "key": jax.random.PRNGKey(step), "step": jnp.asarray(step, jnp.int32)}


ABSTRACT = jax.eval_shape(lambda: _state(0))


def _save(ckpt, *steps):
  for s in steps:
    assert ckpt.save(s, _state(s), {"position": s}, META)
  ckpt.wait()


def _restored_step(ckpt, **kw):
  state, data_state, step = ckpt.restore(ABSTRACT, META, **kw)
  assert int(state["step"]) == step == data_state["position"]
  np.testing.assert_array_equal(state["w"], _state(step)["w"])
  return step


def _failing_json_writes(monkeypatch):
  async def fail(*_):
    raise OSError("No space left on device (injected)")
  monkeypatch.setattr(jh.JsonCheckpointHandler, "_save_fn", fail)


def _biggest_file(step_dir):
  files = checkpoint._files(step_dir)
  return os.path.join(step_dir, max(files, key=lambda f: os.path.getsize(
      os.path.join(step_dir, f))))


def test_stale_temporary_directory_is_removed_and_ignored(tmp_path):
  ckpt = Checkpointer(str(tmp_path), every=10)
  _save(ckpt, 10)
  ckpt.close()
  stale = tmp_path / "20.orbax-checkpoint-tmp-1712345678"
  (stale / "state").mkdir(parents=True)
  (stale / "state" / "partial").write_bytes(b"\0" * 100)
  ckpt = Checkpointer(str(tmp_path), every=10)
  assert not stale.exists()
  assert ckpt.latest_step() == 10
  _save(ckpt, 20)
  assert _restored_step(ckpt) == 20
  ckpt.close()


def test_async_write_error_reaches_the_next_save_and_keeps_the_last_good(
    tmp_path, monkeypatch):
  ckpt = Checkpointer(str(tmp_path), every=10, max_to_keep=1)
  _save(ckpt, 10)
  _failing_json_writes(monkeypatch)
  assert ckpt.save(20, _state(20), {"position": 20}, META)  # returns at once
  monkeypatch.undo()
  with pytest.raises(CheckpointWriteError,
                     match=r"step 20 .* failed: OSError: No space left.*newest good step is 10"):
    ckpt.save(30, _state(30), {"position": 30}, META)
  assert ckpt.latest_step() == 10          # max_to_keep=1 did not delete it
  assert _restored_step(ckpt) == 10
  ckpt.close()


def test_async_write_error_reaches_close(tmp_path, monkeypatch):
  ckpt = Checkpointer(str(tmp_path), every=10)
  _failing_json_writes(monkeypatch)
  ckpt.save(10, _state(10), {"position": 10}, META)
  with pytest.raises(CheckpointWriteError, match="No space left"):
    ckpt.close()


def test_bit_flip_and_truncation_are_caught_by_the_manifest(tmp_path):
  ckpt = Checkpointer(str(tmp_path), every=10, max_to_keep=None)
  _save(ckpt, 10, 20, 30)
  manifest = json.load(open(tmp_path / "30" / checkpoint.MANIFEST))
  assert "state/_METADATA" in manifest["files"] and "meta/metadata" in manifest["files"]
  victim = _biggest_file(str(tmp_path / "30"))
  blob = bytearray(open(victim, "rb").read())
  blob[len(blob) // 2] ^= 0x01                       # one bit
  open(victim, "wb").write(bytes(blob))
  name = os.path.relpath(victim, tmp_path / "30")
  # An explicit step is refused, naming the file and the newest good step.
  with pytest.raises(CorruptCheckpointError,
                     match=rf"step 30 .* refused: file {name} does not match its "
                           r"SHA-256.*newest good step is 20: restore\(step=20\)"):
    ckpt.restore(ABSTRACT, META, step=30)
  # The default falls back with a warning and moves the corrupt step aside.
  with pytest.warns(RuntimeWarning, match=r"step 30 .* refused.*30\.corrupt"):
    assert _restored_step(ckpt) == 20
  assert (tmp_path / "30.corrupt").is_dir() and ckpt.latest_step() == 20
  # Truncation: the size differs.
  victim = _biggest_file(str(tmp_path / "20"))
  os.truncate(victim, os.path.getsize(victim) // 2)
  with pytest.warns(RuntimeWarning, match=r"step 20 .* bytes.*truncated"):
    assert _restored_step(ckpt) == 10
  # The run can save the refused steps again.
  _save(ckpt, 20)
  assert _restored_step(ckpt) == 20
  ckpt.close()


def test_every_step_corrupt_is_an_error(tmp_path):
  ckpt = Checkpointer(str(tmp_path), every=10)
  _save(ckpt, 10)
  os.remove(_biggest_file(str(tmp_path / "10")))
  with pytest.raises(CorruptCheckpointError, match="is missing"):
    ckpt.restore(ABSTRACT, META, step=10)
  with pytest.warns(RuntimeWarning), pytest.raises(CorruptCheckpointError,
                                                   match="No good checkpoint"):
    ckpt.restore(ABSTRACT, META)
  ckpt.close()


def test_unsealed_step_is_ignored_replaced_and_never_costs_the_last_good(
    tmp_path, monkeypatch):
  """max_to_keep=1: orbax finishes step 20, the process dies before the
  manifest: step 10 (sealed) must survive and be what a resume gets."""
  ckpt = Checkpointer(str(tmp_path), every=10, max_to_keep=1)
  _save(ckpt, 10)
  monkeypatch.setattr(checkpoint, "write_manifest", lambda step_dir: None)
  ckpt.save(20, _state(20), {"position": 20}, META)
  ckpt.close()
  monkeypatch.undo()
  assert (tmp_path / "20").is_dir() and (tmp_path / "10").is_dir()
  ckpt = Checkpointer(str(tmp_path), every=10, max_to_keep=1)
  assert ckpt.latest_step() == 10 and ckpt.sealed_steps() == [10]
  assert _restored_step(ckpt) == 10
  with pytest.raises(CorruptCheckpointError, match="never sealed"):
    ckpt.restore(ABSTRACT, META, step=20)
  _save(ckpt, 20)                        # replaces the unsealed step 20 ...
  assert ckpt.sealed_steps() == [20]     # ... and only then drops step 10
  assert sorted(os.listdir(tmp_path)) == ["20"]
  ckpt.close()


def test_max_to_keep_keeps_only_sealed_steps(tmp_path):
  ckpt = Checkpointer(str(tmp_path), every=10, max_to_keep=2)
  _save(ckpt, 10, 20, 30)
  assert ckpt.sealed_steps() == [20, 30]
  ckpt.close()


def test_restore_names_differing_tasks_and_process_count(tmp_path):
  ckpt = Checkpointer(str(tmp_path), every=10)
  _save(ckpt, 10)
  with pytest.raises(ValueError, match=r"tasks \['a', 'b'\].*tasks \['a', 'c'\]"):
    ckpt.restore(ABSTRACT, dict(META, tasks=["a", "c"]))
  # A checkpoint written by 2 processes (meta edited by hand, then re-sealed:
  # without re-sealing the edit itself is refused as corruption).
  path = tmp_path / "10" / "meta" / "metadata"
  meta = json.loads(path.read_text())
  path.write_text(json.dumps(dict(meta, process_count=2)))
  with pytest.raises(CorruptCheckpointError, match="meta/metadata"):
    ckpt.restore(ABSTRACT, META, step=10)
  checkpoint.write_manifest(str(tmp_path / "10"))
  with pytest.raises(ValueError, match=r"written by 2 process\(es\) but this run has 1"):
    ckpt.restore(ABSTRACT, META)
  ckpt.close()


def test_sigterm_handler_sets_the_request_and_is_removed():
  previous = signal.getsignal(signal.SIGTERM)
  stop = signals.StopSignal().install()
  try:
    assert signal.getsignal(signal.SIGTERM) == stop._handle  # before killing ourselves
    assert not stop.requested(1)
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):
      if stop.received:
        break
    assert stop.requested(2) and stop.signal_name == "SIGTERM"
  finally:
    stop.restore()
  assert signal.getsignal(signal.SIGTERM) == previous
  assert "Run the same command with --resume" in str(signals.Preempted(2, "/ckpt"))
