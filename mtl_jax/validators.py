"""Checks of user-given values, shared by every package.

Each check returns the value (converted where said) or raises ``ValueError``
whose message starts with ``name``, the subject as the user wrote it: a config
key (``"train.num_steps"``), a model option (``"MMoE experts.num"``) or a
hyperparameter (``"Hyperparameter 'c'"``, see :func:`hyperparameter`), and
ends with the value received::

  positive_int(0, "train.num_steps")
  # ValueError: train.num_steps must be a positive integer, got 0.

Wrong *types* raise :class:`InvalidValue`, which is a ``ValueError`` and a
``TypeError`` at once, so callers catching either see it.

Two wordings of a lower bound: :func:`positive` says "a positive number"
(config values: ``optimizer.learning_rate``), :func:`above` and
:func:`at_least` give the bound (method hyperparameters and dataset options:
``Hyperparameter 'eps' must be > 0``, ``toy: num_train must be >= 1``).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np


class InvalidValue(ValueError, TypeError):
  """A value of the wrong type or outside its domain (one line, names it)."""


def hyperparameter(name: str) -> str:
  """The subject of a method hyperparameter's message: ``Hyperparameter 'c'``."""
  return f"Hyperparameter {name!r}"


def _is_int(value: Any) -> bool:
  return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _is_number(value: Any) -> bool:
  """A real number (no bool): a Python or numpy scalar, or a 0-d numeric array."""
  if isinstance(value, (bool, np.bool_)):
    return False
  if isinstance(value, (int, float, np.integer, np.floating)):
    return True
  dtype = getattr(value, "dtype", None)  # 0-d numpy / jax arrays
  return (getattr(value, "shape", None) == () and dtype is not None
          and np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating))


def integer(value: Any, name: str, minimum: int = 1) -> int:
  """``value`` as an int ``>= minimum``.

  The message says "a positive integer" for ``minimum=1``, else
  "an integer >= minimum"; a non-integer also gives its type.
  """
  if not _is_int(value):
    raise InvalidValue(f"{name} must be an integer >= {minimum}, got {value!r} "
                       f"({type(value).__name__}).")
  if value < minimum:
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    raise InvalidValue(f"{name} must be {what}, got {value!r}.")
  return int(value)


def positive_int(value: Any, name: str) -> int:
  """``value`` as an int >= 1 (no bool)."""
  if not _is_int(value) or value < 1:
    raise InvalidValue(f"{name} must be a positive integer, got {value!r}.")
  return int(value)


def non_negative_int(value: Any, name: str) -> int:
  """``value`` as an int >= 0 (no bool)."""
  return integer(value, name, 0)


def widths(value: Any, name: str) -> tuple[int, ...]:
  """A non-empty sequence of positive layer widths."""
  if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
    raise InvalidValue(f"{name} must be a non-empty sequence of positive integers, "
                       f"got {value!r}.")
  return tuple(positive_int(v, name) for v in value)


def number(value: Any, name: str) -> float:
  """``value`` as a finite float (no bool)."""
  if not _is_number(value) or not math.isfinite(float(value)):
    raise InvalidValue(f"{name} must be a finite number, got {value!r}.")
  return float(value)


def positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
  """``value`` as a float ``> 0`` (``>= 0`` with ``allow_zero``)."""
  ok = _is_number(value) and (value >= 0 if allow_zero else value > 0)
  if not ok:
    what = "a non-negative number" if allow_zero else "a positive number"
    raise InvalidValue(f"{name} must be {what}, got {value!r}.")
  return float(value)


def above(value: Any, name: str, bound: float) -> Any:
  """``value`` if it is a number ``> bound``: "``name`` must be > bound"."""
  if not (_is_number(value) and value > bound):
    raise InvalidValue(f"{name} must be > {bound}, got {value!r}.")
  return value


def at_least(value: Any, name: str, bound: float) -> Any:
  """``value`` if it is a number ``>= bound``: "``name`` must be >= bound"."""
  if not (_is_number(value) and value >= bound):
    raise InvalidValue(f"{name} must be >= {bound}, got {value!r}.")
  return value


def in_range(value: Any, name: str, low: float, high: float, *,
             closed: str = "both") -> float:
  """``value`` as a float in the interval from ``low`` to ``high``.

  ``closed`` is ``"both"`` (``[low, high]``), ``"left"`` (``[low, high)``),
  ``"right"`` (``(low, high]``) or ``"neither"``.
  """
  left = closed in ("both", "left")
  right = closed in ("both", "right")
  ok = _is_number(value) and (low <= value if left else low < value) \
      and (value <= high if right else value < high)
  if not ok:
    interval = f"{'[' if left else '('}{low}, {high}{']' if right else ')'}"
    raise InvalidValue(f"{name} must be in {interval}, got {value!r}.")
  return float(value)


def vector(value: Any, name: str, *, positive: bool = False,
           nonnegative: bool = False) -> np.ndarray:
  """``value`` as a finite, non-empty 1-D float64 array (entries ``> 0`` with
  ``positive``, ``>= 0`` with ``nonnegative``)."""
  array = np.asarray(value, dtype=np.float64)
  if array.ndim != 1 or array.size == 0:
    raise InvalidValue(f"{name} must be a non-empty 1-D vector, got shape "
                       f"{array.shape}.")
  if not np.all(np.isfinite(array)):
    raise InvalidValue(f"{name} must be finite, got {value!r}.")
  if positive and not np.all(array > 0):
    raise InvalidValue(f"{name} must have entries > 0, got {value!r}.")
  if nonnegative and not np.all(array >= 0):
    raise InvalidValue(f"{name} must have entries >= 0, got {value!r}.")
  return array


def choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
  """``value`` if it is one of ``choices``."""
  choices = tuple(choices)
  if value not in choices:
    raise InvalidValue(f"{name} must be one of {list(choices)}, got {value!r}.")
  return value


def mapping(value: Any, name: str) -> dict:
  """``value`` (a dict, a ConfigDict or None) as a plain dict; None gives ``{}``."""
  if value is None:
    return {}
  if not hasattr(value, "items"):
    raise InvalidValue(f"{name} must be a mapping, got {value!r}.")
  return {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in value.items()}


def boolean(value: Any, name: str) -> bool:
  """``value`` if it is ``True`` or ``False`` (no 0/1, no strings)."""
  if not isinstance(value, (bool, np.bool_)):
    raise InvalidValue(f"{name} must be True or False, got {value!r}.")
  return bool(value)
