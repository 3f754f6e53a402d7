"""Orbax checkpoints of the train state, sealed with our own content hashes.

A checkpoint at step ``s`` holds three items: ``state`` (the whole
:class:`~mtl_jax.train.state.TrainState`: params, optimizer, weighting and
aggregation states, RNG key, counters), ``data`` (the train iterator's
position, JSON) and ``meta`` (task names, process count, config).

Life of a step (what survives which fault):

1. ``save`` starts an asynchronous orbax write into
   ``<dir>/<s>.orbax-checkpoint-tmp*``; orbax renames it to ``<dir>/<s>`` when
   every file is written. A crash before that leaves only the temporary
   directory, which the next :class:`Checkpointer` on the directory removes.
2. A background thread then *seals* the step: it writes ``<dir>/<s>/``
   :data:`MANIFEST`, the SHA-256 and size of every file of the step, after
   the orbax write completed (atomically: temporary file, fsync, rename). Only
   sealed ("verified") steps count: :meth:`Checkpointer.latest_step` and
   :meth:`Checkpointer.restore` ignore a step orbax finished but that was
   never sealed (the process died in between), and ``save`` replaces it.
3. Old steps are deleted by us, not by orbax (its own ``max_to_keep`` would
   delete the previous step as soon as the new one is renamed, even when the
   new write failed): only the newest ``max_to_keep`` *sealed* steps are kept,
   and a step is deleted only once a newer one is sealed. A crash at any point
   therefore leaves at least one good checkpoint once one was ever sealed.
4. ``restore`` checks every file against the manifest. By default (no
   ``step``) a corrupt step (bit flip, truncation, missing file) is refused
   with a warning, moved aside to ``<dir>/<s>.corrupt`` (so the run can save
   step ``s`` again) and the newest good step is restored instead. Asked for
   an explicit ``step`` that is corrupt, it raises
   :class:`CorruptCheckpointError` naming the file and offering the newest
   good step.

An asynchronous write error (disk full, permissions) is raised as
:class:`CheckpointWriteError` by the next ``save``, ``wait``, ``close`` or
``restore``. On several processes, process 0 writes the manifests (the
directory must be shared, as orbax requires) and every process verifies.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import os
import shutil
import threading
import warnings
from typing import Any, Optional

from absl import logging
import jax
import orbax.checkpoint as ocp

MANIFEST = "mtl_jax_manifest.json"
_TMP_GLOB = "*.orbax-checkpoint-tmp*"
_CHUNK = 1 << 20


class CheckpointError(RuntimeError):
  """Base class of checkpoint failures."""


class CorruptCheckpointError(CheckpointError):
  """A checkpoint's files do not match the hashes written when it was saved."""


class CheckpointWriteError(CheckpointError):
  """An asynchronous checkpoint write (or its sealing) failed."""


def _is_primary() -> bool:
  return jax.process_index() == 0


_BARRIERS = itertools.count()


def _barrier(name: str) -> None:
  """Waits for every process (names must be unique: every process counts the
  same calls in the same order)."""
  if jax.process_count() > 1:
    ocp.multihost.sync_global_processes(
        f"mtl_jax_checkpoint_{name}_{next(_BARRIERS)}")


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(_CHUNK), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _files(step_dir: str) -> list[str]:
  """Relative paths of the step's files, the manifest excluded, sorted."""
  out = []
  for root, _, names in os.walk(step_dir):
    for name in names:
      rel = os.path.relpath(os.path.join(root, name), step_dir)
      if not rel.startswith(MANIFEST):
        out.append(rel)
  return sorted(out)


def write_manifest(step_dir: str) -> dict:
  """Hashes every file of a finished step and writes :data:`MANIFEST` atomically."""
  files = {rel: {"sha256": _sha256(os.path.join(step_dir, rel)),
                 "size": os.path.getsize(os.path.join(step_dir, rel))}
           for rel in _files(step_dir)}
  manifest = {"format": 1, "files": files}
  tmp = os.path.join(step_dir, MANIFEST + ".tmp")
  with open(tmp, "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, os.path.join(step_dir, MANIFEST))
  return manifest


def verify_manifest(step_dir: str) -> Optional[str]:
  """None if every file of the step matches its manifest, else what is wrong."""
  path = os.path.join(step_dir, MANIFEST)
  if not os.path.exists(path):
    return (f"{path} is missing: the step was never sealed (the run stopped "
            "before its save completed, or an older version wrote it)")
  try:
    with open(path) as f:
      files = json.load(f)["files"]
  except (OSError, ValueError, KeyError) as e:
    return f"{path} is unreadable ({e})"
  for rel, expected in sorted(files.items()):
    full = os.path.join(step_dir, rel)
    if not os.path.exists(full):
      return f"file {rel} is missing"
    size = os.path.getsize(full)
    if size != expected["size"]:
      return (f"file {rel} has {size} bytes, {expected['size']} when saved "
              "(truncated or overwritten)")
    if _sha256(full) != expected["sha256"]:
      return f"file {rel} does not match its SHA-256 from the save (bit flip?)"
  return None


def remove_stale_tmp(directory: str) -> list[str]:
  """Deletes orbax's unfinished ``*.orbax-checkpoint-tmp*`` directories."""
  stale = sorted(glob.glob(os.path.join(directory, _TMP_GLOB)))
  for path in stale:
    logging.warning("Removing an unfinished checkpoint write: %s", path)
    shutil.rmtree(path, ignore_errors=True)
  return stale


def _close_failed(manager: ocp.CheckpointManager) -> None:
  """Closes a manager whose last write failed (its ``close`` re-raises that)."""
  try:
    manager.close()
  except Exception:  # pylint: disable=broad-except
    try:  # forget the failed finalize thread (orbax internals), then close
      manager._finalize_thread.set(None)  # pylint: disable=protected-access
      manager.close()
    except Exception as e:  # pylint: disable=broad-except
      logging.warning("Could not close the failed checkpoint manager: %s", e)


class Checkpointer:
  """Saves every ``every`` steps (asynchronously) and restores the latest good step.

  Args:
    directory: the checkpoint directory (created if missing). Unfinished
      temporary directories of an earlier crash are removed.
    every: save period in steps for :meth:`should_save` (0: never).
    max_to_keep: how many sealed steps to keep (None: all).
    async_save: write in the background (the default) or block in ``save``.
  """

  def __init__(self, directory: str, *, every: int, max_to_keep: Optional[int] = 3,
               async_save: bool = True):
    if max_to_keep is not None and int(max_to_keep) < 1:
      raise ValueError(f"max_to_keep must be >= 1 or None, got {max_to_keep!r}.")
    self.directory = os.path.abspath(directory)
    self.every = int(every)
    self.max_to_keep = None if max_to_keep is None else int(max_to_keep)
    self._async = bool(async_save)
    self._manager = self._open()
    self._sealer: Optional[threading.Thread] = None
    self._error: Optional[tuple[int, BaseException]] = None

  def _open(self) -> ocp.CheckpointManager:
    """A fresh orbax manager, after removing unfinished writes."""
    if _is_primary() and os.path.isdir(self.directory):
      remove_stale_tmp(self.directory)
    _barrier("open")
    options = ocp.CheckpointManagerOptions(
        max_to_keep=None, enable_async_checkpointing=self._async, create=True)
    return ocp.CheckpointManager(
        self.directory, options=options, item_names=("state", "data", "meta"))

  # -- steps -----------------------------------------------------------------

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(int(step)))

  def is_sealed(self, step: int) -> bool:
    return os.path.exists(os.path.join(self.step_dir(step), MANIFEST))

  def sealed_steps(self) -> list[int]:
    """Steps whose save completed and whose manifest was written, oldest first."""
    self._settle()
    return sorted(s for s in self._manager.all_steps() if self.is_sealed(s))

  def latest_step(self) -> Optional[int]:
    """The newest sealed step (unsealed leftovers of a crash are ignored)."""
    steps = self.sealed_steps()
    unsealed = sorted(set(self._manager.all_steps()) - set(steps))
    if unsealed:
      logging.warning("Ignoring checkpoint step(s) %s in %s: never sealed with a "
                      "manifest.", unsealed, self.directory)
    return steps[-1] if steps else None

  def should_save(self, step: int) -> bool:
    return self.every > 0 and step % self.every == 0

  # -- saving ----------------------------------------------------------------

  def save(self, step: int, state, data_state: dict, meta: dict, *,
           force: bool = False) -> bool:
    """Starts saving ``state`` at ``step``; returns whether it saved.

    A sealed step is left as it is; an unsealed one (a crash between orbax's
    write and the manifest) is replaced.

    Raises:
      CheckpointWriteError: the previous asynchronous save failed.
    """
    self._settle()
    self._prune()
    if step in self._manager.all_steps():
      if self.is_sealed(step):
        return False
      self._manager.delete(step)
    try:
      saved = self._manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          data=ocp.args.JsonSave(data_state),
          meta=ocp.args.JsonSave(meta)), force=force)
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointWriteError(
          f"Saving checkpoint step {step} to {self.directory} failed: {e}") from e
    if saved:
      self._start_sealing(step)
    return bool(saved)

  def _start_sealing(self, step: int) -> None:
    def seal():
      try:
        self._manager.wait_until_finished()
        if _is_primary():
          write_manifest(self.step_dir(step))
      except BaseException as e:  # pylint: disable=broad-except
        self._error = (step, e)
    if self._async:
      self._sealer = threading.Thread(target=seal, name=f"mtl_jax_seal_{step}",
                                      daemon=True)
      self._sealer.start()
    else:
      seal()

  def _settle(self) -> None:
    """Waits for the pending save and its seal; raises its error, once."""
    if self._sealer is not None:
      self._sealer.join()
      self._sealer = None
    _barrier("settle")
    if self._error is not None:
      step, error = self._error
      self._error = None
      # Orbax re-raises a failed write on every later call: start afresh.
      _close_failed(self._manager)
      self._manager = self._open()
      raise CheckpointWriteError(
          f"The asynchronous save of checkpoint step {step} to {self.directory} "
          f"failed: {type(error).__name__}: {error}. The step is not usable; "
          f"the newest good step is {self._newest_sealed()}.") from error

  def _newest_sealed(self) -> Optional[int]:
    steps = [s for s in self._manager.all_steps() if self.is_sealed(s)]
    return max(steps) if steps else None

  def _prune(self) -> None:
    """Deletes steps older than the newest ``max_to_keep`` sealed ones."""
    if self.max_to_keep is None:
      return
    sealed = sorted(s for s in self._manager.all_steps() if self.is_sealed(s))
    if not sealed:
      return
    keep = set(sealed[-self.max_to_keep:])
    for step in self._manager.all_steps():
      if step not in keep and step < sealed[-1]:
        self._manager.delete(step)

  def wait(self) -> None:
    """Blocks until the pending save is written and sealed."""
    self._settle()
    self._prune()

  def close(self) -> None:
    try:
      self.wait()
    finally:
      self._manager.close()

  # -- restoring -------------------------------------------------------------

  def restore(self, abstract_state, meta: dict, step: Optional[int] = None, *,
              verify: bool = True) -> tuple[Any, dict, int]:
    """Restores ``(state, data_state, step)``; raises if the run differs.

    Args:
      abstract_state: ``jax.eval_shape`` of the state, giving structure,
        shapes, dtypes (and shardings) to restore into.
      meta: this run's meta; its ``tasks`` and ``process_count`` must equal
        the checkpoint's.
      step: which step (default: the newest good one, falling back past
        corrupt steps, which are moved aside to ``<step>.corrupt``).
      verify: check the files against the step's manifest (False restores an
        unsealed step, e.g. one written by an older version).

    Raises:
      FileNotFoundError: no (sealed) checkpoint.
      CorruptCheckpointError: ``step`` (or every step) fails verification.
      ValueError: the checkpoint's tasks or process count differ from ``meta``.
    """
    self._settle()
    step = self._pick(step, verify)
    saved_meta = self._manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    check_compatible(saved_meta, meta)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data=ocp.args.JsonRestore()))
    return restored["state"], restored["data"], step

  def _pick(self, step: Optional[int], verify: bool) -> int:
    """The step to restore, verified (see :meth:`restore`)."""
    all_steps = sorted(self._manager.all_steps())
    if step is not None:
      if step not in all_steps:
        raise FileNotFoundError(f"No checkpoint step {step} in {self.directory}; "
                                f"steps: {all_steps}.")
      problem = verify_manifest(self.step_dir(step)) if verify else None
      if problem:
        good = self._newest_good(below=step)
        offer = (f"The newest good step is {good}: restore(step={good}), or "
                 "resume without a step to fall back to it automatically."
                 if good is not None else "No older step is good.")
        raise CorruptCheckpointError(
            f"Checkpoint step {step} in {self.directory} is refused: {problem}. "
            f"{offer}")
      return step
    candidates = all_steps if not verify else [s for s in all_steps if self.is_sealed(s)]
    if not candidates:
      raise FileNotFoundError(
          f"No sealed checkpoint in {self.directory} (steps present: {all_steps}).")
    for s in reversed(candidates):
      problem = verify_manifest(self.step_dir(s)) if verify else None
      if problem is None:
        return s
      self._quarantine(s, problem)
    raise CorruptCheckpointError(
        f"No good checkpoint in {self.directory}: every step failed verification "
        f"(moved aside as <step>.corrupt).")

  def _newest_good(self, below: int) -> Optional[int]:
    for s in sorted(self._manager.all_steps(), reverse=True):
      if s < below and verify_manifest(self.step_dir(s)) is None:
        return s
    return None

  def _quarantine(self, step: int, problem: str) -> None:
    """Moves a corrupt step aside, so it is neither restored nor kept as saved."""
    target = self.step_dir(step) + ".corrupt"
    message = (f"Checkpoint step {step} in {self.directory} is refused: {problem}. "
               f"Moved it to {target}; falling back to an older step.")
    logging.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    _barrier(f"quarantine_{step}_a")
    if _is_primary():
      shutil.rmtree(target, ignore_errors=True)
      os.rename(self.step_dir(step), target)
    _barrier(f"quarantine_{step}_b")
    self._manager.reload()


def check_compatible(saved: dict, current: dict) -> None:
  """Raises ``ValueError`` naming what differs between two runs' meta."""
  if list(saved.get("tasks", [])) != list(current.get("tasks", [])):
    raise ValueError(
        f"The checkpoint was written for tasks {saved.get('tasks')}, but this "
        f"run has tasks {current.get('tasks')}; restore into a model with the "
        "same tasks, or start a fresh run directory.")
  if saved.get("process_count") != current.get("process_count"):
    raise ValueError(
        f"The checkpoint was written by {saved.get('process_count')} process(es) "
        f"but this run has {current.get('process_count')}; the data iterator "
        "position cannot be carried over. Resume with the same process count.")


def meta_for(tasks, config) -> dict:
  """The facts a checkpoint must share with the run that restores it."""
  return {"tasks": [t.name for t in tasks], "process_count": jax.process_count(),
          "config": config.to_json() if hasattr(config, "to_json") else str(config)}
