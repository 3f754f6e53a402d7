"""Checks that a config's tasks match a dataset's and that records are sane.

Every error names what is wrong: a task the dataset lacks (listing both sets),
a label out of range (the task and the value), a wrong dtype or shape (the
feature), a non-finite value (the feature).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

# numpy dtype kinds accepted for each task kind and for the inputs.
_DTYPE_KINDS = {"multiclass": "iu", "binary": "biuf", "regression": "iuf"}
_INPUT_KINDS = "uf"
_SIZE_FIELD = {"multiclass": "num_classes", "binary": "num_labels",
               "regression": "dim"}


def _names(names) -> list[str]:
  return sorted(names)


def task_names(config_tasks: Any) -> tuple[str, ...] | None:
  """Sorted names of ``config.data.tasks`` (a name, names or a mapping), or None."""
  if not config_tasks:
    return None
  if isinstance(config_tasks, str):
    return (config_tasks,)
  return tuple(sorted(config_tasks))


def selected_tasks(config_tasks: Any, natural: Mapping[str, dict],
                   dataset: str) -> tuple[str, ...]:
  """The task names to keep: ``config_tasks`` (names or a mapping) or all.

  Raises:
    ValueError: ``config_tasks`` names a task the dataset lacks.
  """
  names = task_names(config_tasks)
  if names is None:
    return tuple(sorted(natural))
  missing = set(names) - set(natural)
  if missing:
    raise ValueError(
        f"Dataset {dataset!r} has no task(s) {_names(missing)}. Config tasks: "
        f"{list(names)}; dataset tasks: {_names(natural)}.")
  return names


def _declared(decl: Mapping[str, Any], field: str) -> int:
  return int(decl.get(field, 0 if field == "num_classes" else 1))


def check_declarations(tasks: Sequence[Any], natural: Mapping[str, dict],
                       dataset: str) -> None:
  """Checks :class:`mtl_jax.tasks.Task` objects against the dataset's tasks.

  Raises:
    ValueError: a task the dataset lacks (listing both sets), or a task whose
      kind or size differs from the dataset's.
  """
  names = [t.name for t in tasks]
  missing = set(names) - set(natural)
  if missing:
    raise ValueError(
        f"Dataset {dataset!r} has no task(s) {_names(missing)}. Config tasks: "
        f"{_names(names)}; dataset tasks: {_names(natural)}.")
  for task in tasks:
    decl = natural[task.name]
    if task.kind != decl["kind"]:
      raise ValueError(f"Task {task.name!r}: the config declares kind "
                       f"{task.kind!r}; dataset {dataset!r} has kind "
                       f"{decl['kind']!r}.")
    if decl.get("ignore_label") not in (None, getattr(task, "ignore_label", None)):
      raise ValueError(f"Task {task.name!r}: the config declares ignore_label="
                       f"{getattr(task, 'ignore_label', None)!r}; dataset "
                       f"{dataset!r} has ignore_label={decl.get('ignore_label')!r}.")
    field = _SIZE_FIELD[task.kind]
    if getattr(task, field) != _declared(decl, field):
      raise ValueError(f"Task {task.name!r}: the config declares {field}="
                       f"{getattr(task, field)}; dataset {dataset!r} has "
                       f"{field}={_declared(decl, field)}.")


def _dtype_error(feature: str, values: np.ndarray, allowed: str) -> TypeError:
  kinds = {"b": "bool", "i": "int", "u": "uint", "f": "float"}
  return TypeError(f"Feature {feature!r}: dtype {values.dtype} is not one of "
                   f"{[kinds[k] for k in allowed]}.")


def check_finite(feature: str, values: np.ndarray) -> None:
  """Raises unless every float value of ``feature`` is finite."""
  if values.dtype.kind == "f" and not np.isfinite(values).all():
    bad = values[~np.isfinite(values)].flat[0]
    raise ValueError(f"Feature {feature!r}: non-finite value {bad}.")


def inputs(feature: str, values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """Checked inputs as float32: uint8 scaled to [0, 1], floats kept as they are."""
  if values.dtype.kind not in _INPUT_KINDS:
    raise _dtype_error(feature, values, _INPUT_KINDS)
  if values.shape[1:] != tuple(shape):
    raise ValueError(f"Feature {feature!r}: example shape {values.shape[1:]}, "
                     f"expected {tuple(shape)}.")
  if values.dtype.kind == "u":
    if values.dtype != np.uint8:
      raise TypeError(f"Feature {feature!r}: unsigned inputs must be uint8, got "
                      f"{values.dtype}.")
    return values.astype(np.float32) * np.float32(1 / 255)
  check_finite(feature, values)
  return values.astype(np.float32)


def target_shape(decl: Mapping[str, Any]) -> tuple[int, ...]:
  """Per-example target shape of a task declaration."""
  if decl["kind"] == "multiclass":
    return ()
  width = _declared(decl, _SIZE_FIELD[decl["kind"]])
  return () if width == 1 else (width,)


def _check_range(task: str, decl: Mapping[str, Any], values: np.ndarray) -> None:
  if decl["kind"] == "multiclass":
    low, high = 0, _declared(decl, "num_classes") - 1
  elif decl["kind"] == "binary":
    low, high = 0, 1
  else:
    return
  ignore = decl.get("ignore_label")
  if ignore is not None:
    values = values[values != ignore]
  if values.size and (values.min() < low or values.max() > high):
    bad = values.min() if values.min() < low else values.max()
    hint = ("; a negative label marking a missing one must be declared as "
            "ignore_label in the dataset's and the config's task declarations"
            if bad < 0 else "")
    raise ValueError(f"Task {task!r}: label {bad} is out of range [{low}, "
                     f"{high}]{hint}.")


def targets(task: str, decl: Mapping[str, Any], values: np.ndarray) -> np.ndarray:
  """Checked targets of ``task``: int32 for multiclass, float32 otherwise."""
  allowed = _DTYPE_KINDS[decl["kind"]]
  if values.dtype.kind not in allowed:
    raise _dtype_error(task, values, allowed)
  shape = target_shape(decl)
  if values.shape[1:] != shape and not (shape == () and values.shape[1:] == (1,)):
    raise ValueError(f"Feature {task!r}: example shape {values.shape[1:]}, "
                     f"expected {shape}.")
  values = values.reshape((values.shape[0],) + shape)
  check_finite(task, values)
  _check_range(task, decl, values)
  if decl["kind"] == "multiclass":
    return values.astype(np.int32)
  return values.astype(np.float32)
