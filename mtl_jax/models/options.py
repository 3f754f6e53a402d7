"""Option groups of the architectures: nested keyword options given as dicts.

An architecture's options are its constructor's keyword arguments; groups of
related options (``trunk``, ``head``, ``experts``, ...) are one keyword
argument each, a mapping whose defaults are in the signature. :func:`group`
merges what the user gave over those defaults and refuses unknown keys, so a
typo never passes silently.
"""

from __future__ import annotations

import inspect
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional

from mtl_jax.validators import InvalidValue


def frozen(**defaults: Any) -> Mapping[str, Any]:
  """A read-only mapping, for the default of an option group in a signature."""
  return MappingProxyType(defaults)


def plain(value: Any) -> Any:
  """``value`` with every (nested) mapping, ConfigDicts included, as a dict."""
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if isinstance(value, Mapping):
    return {k: plain(v) for k, v in value.items()}
  return value


def group(value: Optional[Mapping[str, Any]], name: str,
          defaults: Mapping[str, Any]) -> dict[str, Any]:
  """``value`` (a mapping or None) merged over ``defaults``, as a plain dict.

  Raises:
    InvalidValue: if ``value`` is not a mapping or has a key that is not in
      ``defaults``; the message starts with ``name`` (e.g. ``"MMoE: experts"``).
  """
  if value is None:
    value = {}
  if not isinstance(value, Mapping) and not hasattr(value, "to_dict"):
    raise InvalidValue(f"{name} must be a mapping (dict), got {value!r}.")
  value = plain(value)
  unknown = sorted(set(value) - set(defaults))
  if unknown:
    raise InvalidValue(f"{name} has unknown option(s) {unknown}; valid: "
                       f"{sorted(defaults)}.")
  return {**defaults, **value}


def keyword_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
  """The keyword-only arguments of ``fn`` (except ``rngs``) and their defaults
  (``inspect.Parameter.empty`` for a required one). For a class, those of its
  ``__init__`` (NNX modules' metaclass hides the constructor's signature)."""
  if isinstance(fn, type):
    fn = fn.__init__
  return {name: p.default for name, p in inspect.signature(fn).parameters.items()
          if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "rngs"}
