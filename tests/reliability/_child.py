"""Subprocess scenarios of test_resume.py: runs that are killed or stopped.

  python -m tests.reliability._child kill_during_save DATA_DIR WORKDIR
  python -m tests.reliability._child sigterm_then_kill DATA_DIR WORKDIR_A WORKDIR_B

``kill_during_save``: with ``max_to_keep=1``, the write of step 20 hangs in
orbax's background thread and the process SIGKILLs itself once the temporary
directory exists.
``sigterm_then_kill``: ``mtl-jax train`` (``cli.main``) receives SIGTERM at
step 13 and prints ``CLI_EXIT=<code>``; then a second run in WORKDIR_B is
SIGKILLed at step 17, between two saves, once step 10 is sealed.
"""

import glob
import os
import signal
import sys
import time

from mtl_jax import cli
from mtl_jax.train import checkpoint, loop
from tests.reliability import common


def _die() -> None:
  sys.stdout.flush()
  sys.stderr.flush()
  os.kill(os.getpid(), signal.SIGKILL)


def _wait_for(pattern: str, timeout: float = 300.0) -> None:
  deadline = time.time() + timeout
  while not glob.glob(pattern):
    if time.time() > deadline:
      raise TimeoutError(pattern)
    time.sleep(0.01)


def kill_during_save(data_dir: str, workdir: str, step: int = 20) -> None:
  """max_to_keep=1: the kill must not cost the sealed step 10."""
  from orbax.checkpoint._src.handlers import json_checkpoint_handler as jh

  class Hooked(checkpoint.Checkpointer):
    def save(self, s, *args, **kwargs):
      if s == step:
        async def hang(*_):
          time.sleep(3600)
        jh.JsonCheckpointHandler._save_fn = hang
      out = super().save(s, *args, **kwargs)
      if s == step:
        _wait_for(os.path.join(self.directory, f"{step}.orbax-checkpoint-tmp*"))
        print(f"KILLING during the save of step {step}", flush=True)
        _die()
      return out

  loop.Checkpointer = Hooked
  config = common.tiny_config(data_dir, workdir)
  config.train.max_to_keep = 1
  loop.train(config, progress=False, eval_splits=())


def _sigterm_self() -> None:
  os.kill(os.getpid(), signal.SIGTERM)
  handler = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
  for _ in range(5000):  # let the main thread run the Python-level handler
    if getattr(handler, "received", None):
      return
    time.sleep(0.001)


def sigterm_then_kill(data_dir: str, workdir_a: str, workdir_b: str) -> None:
  class Terminating(checkpoint.Checkpointer):
    def should_save(self, s):
      if s == 13:
        _sigterm_self()
      return super().should_save(s)

  loop.Checkpointer = Terminating
  code = cli.main(common.cli_args(data_dir, workdir_a))
  print(f"CLI_EXIT={code}", flush=True)

  class Killing(checkpoint.Checkpointer):
    def should_save(self, s):
      if s == 17:
        _wait_for(os.path.join(self.directory, "10", checkpoint.MANIFEST))
        print("KILLING between saves at step 17", flush=True)
        _die()
      return super().should_save(s)

  loop.Checkpointer = Killing
  loop.train(common.tiny_config(data_dir, workdir_b), progress=False, eval_splits=())


if __name__ == "__main__":
  {"kill_during_save": kill_during_save,
   "sigterm_then_kill": sigterm_then_kill}[sys.argv[1]](*sys.argv[2:])
