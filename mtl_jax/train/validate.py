"""Up-front checks of a run: every config error before the first compiled step.

:func:`check_config` is called at the start of :func:`mtl_jax.train.loop.train`
and raises ``ValueError`` / ``TypeError`` with a message naming the field. What
is checked, and where the check itself lives:

* ``train``: ``num_steps``, ``batch_size`` (and ``eval_batch_size``,
  ``log_every``) positive integers; ``checkpoint_every``, ``eval_every``,
  ``max_nonfinite``, ``max_empty_batches`` non-negative integers;
  ``max_to_keep`` >= 1; ``nonfinite`` one of ``skip``, ``halt`` (here);
  ``compute_dtype`` a known dtype (``precision.compute_dtype``);
  ``accumulation_steps`` a positive integer dividing ``batch_size`` into
  micro-batches that divide over the devices (``accumulation.check_batch``).
* ``data.name``: a known dataset, listing the valid ones (``data.get_spec``);
  a catalog dataset's TFDS data prepared under ``data.data_dir``
  (``catalog.MissingDataError`` otherwise, saying how to prepare it).
* ``tasks``: kinds, sizes, losses, metrics (``tasks.from_config``); the same
  tasks as the dataset, listing both sets (``data.validate_tasks``).
* ``method``: known weighting / aggregation names, listing the valid ones
  (the registries); hyperparameters in their domain (each method's factory);
  weights of the ``fixed`` weighting as long as the task list (``init``).
* ``optimizer``: positive ``learning_rate``, known name and schedule
  (``optimizer.build``).

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

from mtl_jax.train import accumulation, precision

_POSITIVE = ("num_steps", "batch_size", "eval_batch_size", "log_every")
_NON_NEGATIVE = ("checkpoint_every", "eval_every", "max_nonfinite",
                 "max_empty_batches")
NONFINITE_POLICIES = ("skip", "halt")


def _integer(name: str, value: Any, minimum: int) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} "
                    f"({type(value).__name__}).")
  if value < minimum:
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    raise ValueError(f"{name} must be {what}, got {value!r}.")


def check_train(train_config) -> None:
  """Checks the ``train`` section's numbers and policies."""
  for key in ("num_steps", "batch_size"):
    _integer(f"train.{key}", train_config.get(key), 1)
  for key in _POSITIVE[2:]:
    if train_config.get(key) is not None:
      _integer(f"train.{key}", train_config.get(key), 1)
  for key in _NON_NEGATIVE:
    if train_config.get(key) is not None:
      _integer(f"train.{key}", train_config.get(key), 0)
  if train_config.get("max_to_keep") is not None:
    _integer("train.max_to_keep", train_config.get("max_to_keep"), 1)
  policy = train_config.get("nonfinite", "skip")
  if policy not in NONFINITE_POLICIES:
    raise ValueError(f"train.nonfinite must be one of {list(NONFINITE_POLICIES)}, "
                     f"got {policy!r}.")
  precision.compute_dtype(train_config.get("compute_dtype", "float32"))
  steps = train_config.get("accumulation_steps", 1)
  _integer("train.accumulation_steps", steps, 1)
  accumulation.check_batch(int(train_config.get("batch_size")), int(steps))


def check_devices(config) -> None:
  """Micro-batches (``train.accumulation_steps``) divide over the devices."""
  steps = int(config.train.get("accumulation_steps", 1))
  if steps > 1:
    mesh = config.get("mesh", None) or {}
    devices = int(mesh.get("num_devices", 0) or jax.device_count())
    accumulation.check_batch(int(config.train.batch_size), steps, devices)


def check_method(method_config, task_names: Sequence[str]) -> None:
  """Builds the weighting and aggregation of ``config.method`` once."""
  from mtl_jax import aggregation, weighting
  w = weighting.get(method_config.get("weighting", "equal"),
                    **dict(method_config.get("weighting_kwargs", None) or {}))
  try:
    jax.eval_shape(lambda: w.init(len(task_names)))
  except ValueError as e:
    raise ValueError(f"config.method.weighting_kwargs: {e} The tasks, in the "
                     f"order of every per-task vector: {list(task_names)}.") from e
  name = method_config.get("aggregation", "none") or "none"
  if name != "none":
    aggregation.get(name, **dict(method_config.get("aggregation_kwargs", None) or {}))


def check_config(config) -> None:
  """Raises on the first problem of ``config`` (see the module docstring)."""
  from mtl_jax import data, tasks as tasks_lib
  from mtl_jax.train import optimizer
  check_train(config.train)
  check_devices(config)
  _integer("seed", config.get("seed", 0), 0)
  for section in data.sections(config.data):  # each source's, in multi-input mode
    data.get_spec(section.get("name") or "")
  tasks = tasks_lib.from_config(config.tasks)
  data.validate_tasks(config.data, tasks)
  check_method(config.method, [t.name for t in tasks])
  optimizer.build(config.optimizer, int(config.train.num_steps))
  check_data_prepared(config.data)


def check_data_prepared(data_config) -> None:
  """Raises ``catalog.MissingDataError`` if a catalog dataset's TFDS data is
  not prepared under ``data.data_dir`` (embedded datasets are generated);
  in multi-input mode, for each source's dataset."""
  from mtl_jax import data
  from mtl_jax.data import base, catalog
  for section in data.sections(data_config):
    spec = data.get_spec(section.get("name") or "")
    catalog.check_prepared(spec, base.resolve_options(spec, section),
                           base.data_dir(section))


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
