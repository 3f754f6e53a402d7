"""Orbax checkpoints of the train state, data iterator position and run facts.

A checkpoint at step ``s`` holds three items: ``state`` (the whole
:class:`~mtl_jax.train.state.TrainState`: params, optimizer, weighting and
aggregation states, RNG key, counters), ``data`` (the train iterator's state,
JSON) and ``meta`` (task names, process count, config). Restoring checks the
meta against the current run and names what differs.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves every ``every`` steps (asynchronously) and restores the latest."""

  def __init__(self, directory: str, *, every: int, max_to_keep: int = 3,
               async_save: bool = True):
    self.every = int(every)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, enable_async_checkpointing=async_save,
        create=True)
    self._manager = ocp.CheckpointManager(
        os.path.abspath(directory), options=options,
        item_names=("state", "data", "meta"))

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def should_save(self, step: int) -> bool:
    return self.every > 0 and step % self.every == 0

  def save(self, step: int, state, data_state: dict, meta: dict, *,
           force: bool = False) -> bool:
    """Starts saving ``state`` at ``step``; returns whether it saved.

    A step that is already saved is left as it is.
    """
    if step in self._manager.all_steps():
      return False
    return self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_state),
        meta=ocp.args.JsonSave(meta)), force=force)

  def restore(self, abstract_state, meta: dict, step: Optional[int] = None
              ) -> tuple[Any, dict, int]:
    """Restores ``(state, data_state, step)``; raises if the run differs.

    Args:
      abstract_state: ``jax.eval_shape`` of the state, giving structure,
        shapes, dtypes (and shardings) to restore into.
      meta: this run's meta; its ``tasks`` must equal the checkpoint's.
      step: which step (default: the latest).
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"No checkpoint in {self._manager.directory}.")
    saved_meta = self._manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    check_compatible(saved_meta, meta)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data=ocp.args.JsonRestore()))
    return restored["state"], restored["data"], step

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


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
