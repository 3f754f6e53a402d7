"""Checks that a config's tasks match a dataset's and that records are sane.

Every error names what is wrong: a task the dataset lacks (listing both sets),
a label out of range (the task and the value), a wrong dtype or shape (the
feature), a non-finite value (the feature).

A dense task's declaration (kinds ``segmentation``, ``depth``, ``normals``)
carries the spatial shape of its targets, ``shape=(H, W)`` (the catalog
helpers :func:`mtl_jax.data.catalog.segmentation`, ``depth`` and
``normals`` write it), so its per-example targets are ``(H, W)`` int labels,
``(H, W)`` float depths (``(H, W, 1)`` is accepted and reshaped) or
``(H, W, 3)`` float normals. A segmentation declaration without
``ignore_label`` has ignore label -1 (as :class:`mtl_jax.tasks.Task`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

# numpy dtype kinds accepted for each task kind and for the inputs.
_DTYPE_KINDS = {"multiclass": "iu", "binary": "biuf", "regression": "iuf",
                "segmentation": "iu", "depth": "iuf", "normals": "f"}
_INPUT_KINDS = "uf"
_SIZE_FIELD = {"multiclass": "num_classes", "binary": "num_labels",
               "regression": "dim", "segmentation": "num_classes"}
_DENSE = ("segmentation", "depth", "normals")
_INTEGER_TARGETS = ("multiclass", "segmentation")


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


def ignore_label(decl: Mapping[str, Any]) -> int | None:
  """The declaration's ignore label (-1 for a segmentation task without one)."""
  default = -1 if decl["kind"] == "segmentation" else None
  value = decl.get("ignore_label")
  return default if value is None else value


def spatial_shape(task: str, decl: Mapping[str, Any]) -> tuple[int, int]:
  """``(H, W)`` of a dense declaration; raises unless it declares one."""
  shape = decl.get("shape")
  try:
    dims = tuple(int(d) for d in shape)
  except (TypeError, ValueError):
    dims = ()
  if len(dims) != 2 or min(dims) < 1:
    raise ValueError(f"Task {task!r}: a {decl['kind']} declaration needs "
                     f"shape=(H, W) with two positive integers, got {shape!r}.")
  return dims


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
    if ignore_label(decl) not in (None, getattr(task, "ignore_label", None)):
      raise ValueError(f"Task {task.name!r}: the config declares ignore_label="
                       f"{getattr(task, 'ignore_label', None)!r}; dataset "
                       f"{dataset!r} has ignore_label={ignore_label(decl)!r}.")
    if task.kind in _DENSE:
      _check_spatial(task, decl, dataset)
    field = _SIZE_FIELD.get(task.kind)
    if field and getattr(task, field) != _declared(decl, field):
      raise ValueError(f"Task {task.name!r}: the config declares {field}="
                       f"{getattr(task, field)}; dataset {dataset!r} has "
                       f"{field}={_declared(decl, field)}.")


def _check_spatial(task: Any, decl: Mapping[str, Any], dataset: str) -> None:
  shape = spatial_shape(task.name, decl)
  declared = getattr(task, "shape", None)
  if declared is not None and tuple(declared) != shape:
    raise ValueError(f"Task {task.name!r}: the config declares shape="
                     f"{tuple(declared)}; dataset {dataset!r} has shape={shape}.")


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


def target_shape(decl: Mapping[str, Any], task: str = "?") -> tuple[int, ...]:
  """Per-example target shape of a task declaration (``task`` names errors)."""
  kind = decl["kind"]
  if kind in _DENSE:
    return spatial_shape(task, decl) + ((3,) if kind == "normals" else ())
  if kind == "multiclass":
    return ()
  width = _declared(decl, _SIZE_FIELD[kind])
  return () if width == 1 else (width,)


def target_dtype(decl: Mapping[str, Any]) -> type:
  """Dtype of the checked targets: int32 for class labels, float32 otherwise."""
  return np.int32 if decl["kind"] in _INTEGER_TARGETS else np.float32


def _check_range(task: str, decl: Mapping[str, Any], values: np.ndarray) -> None:
  if decl["kind"] in _INTEGER_TARGETS:
    low, high = 0, _declared(decl, "num_classes") - 1
  elif decl["kind"] == "binary":
    low, high = 0, 1
  elif decl["kind"] == "depth":
    if values.size and values.min() < 0:
      raise ValueError(f"Task {task!r}: depth {values.min()} is negative; "
                       "depths are >= 0 (0 marks a missing depth).")
    return
  else:
    return
  ignore = ignore_label(decl)
  if ignore is not None:
    values = values[values != ignore]
  if values.size and (values.min() < low or values.max() > high):
    bad = values.min() if values.min() < low else values.max()
    hint = ("; a negative label marking a missing one must be declared as "
            "ignore_label in the dataset's and the config's task declarations"
            if bad < 0 else "")
    raise ValueError(f"Task {task!r}: label {bad} is out of range [{low}, "
                     f"{high}]{hint}.")


def _trailing_one(decl: Mapping[str, Any], shape: tuple[int, ...]) -> tuple:
  """The other accepted example shape: ``(1,)`` for ``()``, ``(H, W, 1)`` for depth."""
  if shape == ():
    return (1,)
  return shape + (1,) if decl["kind"] == "depth" else shape


def targets(task: str, decl: Mapping[str, Any], values: np.ndarray) -> np.ndarray:
  """Checked targets of ``task``: int32 class labels, float32 otherwise."""
  allowed = _DTYPE_KINDS[decl["kind"]]
  if values.dtype.kind not in allowed:
    raise _dtype_error(task, values, allowed)
  shape = target_shape(decl, task)
  if values.shape[1:] not in (shape, _trailing_one(decl, shape)):
    raise ValueError(f"Feature {task!r}: example shape {values.shape[1:]}, "
                     f"expected {shape}.")
  values = values.reshape((values.shape[0],) + shape)
  check_finite(task, values)
  _check_range(task, decl, values)
  return values.astype(target_dtype(decl))
