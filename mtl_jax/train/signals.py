"""Stopping a run cleanly when it is asked to (SIGTERM: preemption, ``kill``;
SIGINT: Ctrl-C).

:class:`StopSignal` turns SIGTERM and SIGINT into a request the loop checks
once per step: the loop then saves a checkpoint of the step it just finished,
waits for the write, and raises :class:`Preempted`; ``mtl-jax train`` prints the
message and exits with :attr:`Preempted.exit_code` (143 = 128 + SIGTERM, 130 =
128 + SIGINT: what a shell reports for a process ended by the signal, so
schedulers see an unfinished run; rerun with ``--resume`` to continue
bit-exactly).

* One process (no ``jax.distributed``): a Python handler for SIGTERM, installed
  on the main thread for the duration of the step loop (the previous handler is
  put back afterwards). Off the main thread no handler can be installed, and
  SIGTERM keeps its previous effect.
* Several processes: ``jax.distributed`` already listens for SIGTERM and agrees
  on a step at which every process stops
  (``multihost_utils.reached_preemption_sync_point``); no handler is installed.
"""

from __future__ import annotations

import signal
import threading
from typing import Optional

from absl import logging
import jax

EXIT_CODE = 128 + int(signal.SIGTERM)


class Preempted(RuntimeError):
  """The run stopped on a signal after saving a checkpoint of ``step``."""

  def __init__(self, step: int, directory: str, signal_name: str = "SIGTERM"):
    self.step, self.directory, self.signal_name = int(step), directory, signal_name
    self.exit_code = 128 + int(signal.Signals[signal_name])
    super().__init__(
        f"Stopped by {signal_name} after step {step}; saved checkpoint step "
        f"{step} in {directory}. Run the same command with --resume "
        "(loop.train(..., resume=True)) to continue.")


class StopSignal:
  """A stop request set by SIGTERM or SIGINT (see the module docstring).

  Use ``install()`` before the step loop, ``requested(step)`` after each step
  and ``restore()`` in a ``finally``.
  """

  def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)):
    self.signals = tuple(signals)
    self.received: Optional[int] = None
    self._previous: dict[int, object] = {}
    self._no_sync_point = False

  @property
  def signal_name(self) -> str:
    return signal.Signals(self.received or self.signals[0]).name

  def _handle(self, signum, frame) -> None:
    del frame
    self.received = signum

  def install(self) -> "StopSignal":
    """Installs the handler (one process, main thread only); returns self."""
    if jax.process_count() > 1 or threading.current_thread() is not threading.main_thread():
      return self
    for sig in self.signals:
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def restore(self) -> None:
    """Puts the previous handlers back."""
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()

  def requested(self, step: int) -> bool:
    """Whether to save and stop after ``step`` (a sync point on many processes)."""
    if jax.process_count() > 1:
      return self._reached_sync_point(step)
    return self.received is not None

  def _reached_sync_point(self, step: int) -> bool:
    if self._no_sync_point:
      return False
    from jax.experimental import multihost_utils
    try:
      reached = multihost_utils.reached_preemption_sync_point(int(step))
    except RuntimeError as e:  # jax_enable_preemption_service is off
      logging.warning("SIGTERM will not save a checkpoint: %s", e)
      self._no_sync_point = True
      return False
    if reached:
      self.received = int(signal.SIGTERM)
    return reached
