"""Checks of a run against the machine, and the guard against unlabelled batches.

The config itself is read and checked once by :func:`mtl_jax.settings.parse`
(one :class:`~mtl_jax.settings.ConfigError` naming the key and value).
:func:`check_config` adds what needs the environment:

* the micro-batches (``train.accumulation_steps``) divide over the devices of
  the data axis;
* a catalog dataset's TFDS data is prepared under ``data.data_dir``
  (``catalog.MissingDataError`` otherwise, saying how to prepare it).

Later checks, still before or at the first step: records (labels in range,
dtypes, shapes, finite values) on the first batch and on every batch
(``data.checks``); predictions against targets at trace time
(``losses.task_loss``); a checkpoint's tasks and process count on resume
(``checkpoint.check_compatible``). During the run, :class:`EmptyBatchGuard`
stops a run whose batches carry no label at all (``train.max_empty_batches``).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import numpy as np

from mtl_jax import data, settings as settings_lib
from mtl_jax.data import base, catalog
from mtl_jax.train import accumulation


def check_config(config) -> settings_lib.Settings:
  """Parses ``config`` (unless it is :class:`~mtl_jax.settings.Settings`
  already) and checks it against this machine; returns the settings."""
  s = settings_lib.parse(config)
  check_devices(s.train, s.mesh)
  check_data_prepared(s.data)
  return s


def check_devices(train: settings_lib.TrainSettings,
                  mesh: settings_lib.MeshSettings) -> None:
  """Micro-batches (``train.accumulation_steps``) divide over the devices of
  the data axis (``mesh.num_devices``, or all of them)."""
  if train.accumulation_steps > 1:
    devices = mesh.num_devices or jax.device_count()
    try:
      accumulation.check_batch(train.batch_size, train.accumulation_steps, devices)
    except ValueError as e:
      raise settings_lib.ConfigError(str(e)) from e


def check_data_prepared(data_config) -> None:
  """Raises ``catalog.MissingDataError`` if a catalog dataset's TFDS data, or
  a file dataset's files (NYUv2, Cityscapes, Office), are not prepared under
  ``data.data_dir`` (embedded datasets are generated); in multi-input mode,
  for each source's dataset."""
  for section in data.sections(data_config):
    spec = data.get_spec(section.get("name") or "")
    options, root = base.resolve_options(spec, section), base.data_dir(section)
    catalog.check_prepared(spec, options, root)
    check = getattr(spec, "check", None)  # files.FileDatasetSpec
    if check is not None:
      check(options, root)


class EmptyBatches(ValueError):
  """Raised after ``train.max_empty_batches`` batches without any label."""


class EmptyBatchGuard:
  """Counts consecutive steps in which no task had a labelled example.

  ``observe(step, counts)`` takes the step's per-task label counts (a device
  array) and checks them one step later, so the loop never waits for the
  device. ``limit=0`` turns the check off.
  """

  def __init__(self, limit: int, task_names: Sequence[str]):
    self.limit = int(limit)
    self.task_names = list(task_names)
    self.streak = 0
    self._pending: Optional[tuple[int, Any]] = None

  def observe(self, step: int, counts) -> None:
    if self.limit <= 0:
      return
    pending, self._pending = self._pending, (step, counts)
    if pending is not None:
      self._check(*pending)

  def _check(self, step: int, counts) -> None:
    if np.any(np.asarray(jax.device_get(counts)) > 0):
      self.streak = 0
      return
    self.streak += 1
    if self.streak >= self.limit:
      raise EmptyBatches(
          f"No task had a labelled example in {self.streak} consecutive training "
          f"batches (steps {step - self.streak + 1}-{step}; "
          f"train.max_empty_batches={self.limit}): every mask of the tasks "
          f"{self.task_names} was empty, or every label was the task's "
          "ignore_label. Check the data's masks and labels.")
