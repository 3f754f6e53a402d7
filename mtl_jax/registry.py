"""Name -> object tables: the one plug-in shape of mtl_jax.

Every kind of plug-in (weighting and aggregation methods, architectures,
penalties, datasets) is listed in a :class:`Registry`. Its built-in entries
map a name to ``"module:attribute"`` inside the registry's package and are
imported only when asked for, so importing a registry stays cheap and one
plug-in file never has to import another. Users add their own entries with
:meth:`Registry.register`::

  weighting.REGISTRY.register("mine", my_factory)   # then get("mine", ...)
  data.register(my_spec)                             # data.REGISTRY underneath

What an entry holds depends on the registry: a factory of a method (called
with keyword hyperparameters by :meth:`Registry.get`), a model class, a
:class:`~mtl_jax.penalties.base.Penalty`, a
:class:`~mtl_jax.data.base.DatasetSpec`.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Mapping

DEFAULT_UNKNOWN = "Unknown {kind} {name!r}.{hint} Valid names: {names}."


class Registry:
  """A lazily importing name -> object table with helpful errors.

  Args:
    kind: what the entries are, for messages (``"weighting method"``).
    package: the package whose modules hold the built-in entries.
    entries: built-in name -> ``"module:attribute"`` (module relative to
      ``package``).
    unknown: the message for an unknown name, formatted with ``kind``,
      ``name``, ``hint`` (``" Did you mean 'x'?"`` or ``""``), ``names``
      (comma-separated) and ``listed`` (the names as a Python list).
  """

  def __init__(self, kind: str, package: str, entries: Mapping[str, str], *,
               unknown: str = DEFAULT_UNKNOWN):
    self.kind = kind
    self._package = package
    self._builtin = dict(entries)
    self._unknown = unknown
    # Users' own entries, name -> object; one registered with replace=True
    # under a built-in name shadows the built-in.
    self.registered: dict[str, Any] = {}

  def names(self) -> tuple[str, ...]:
    return tuple(sorted(set(self._builtin) | set(self.registered)))

  def __contains__(self, name: str) -> bool:
    return name in self._builtin or name in self.registered

  def lookup(self, name: str) -> Any:
    """The entry ``name``; a ``ValueError`` listing the valid names if none."""
    if name in self.registered:
      return self.registered[name]
    if name not in self._builtin:
      close = difflib.get_close_matches(str(name), self.names(), n=1)
      hint = f" Did you mean {close[0]!r}?" if close else ""
      raise ValueError(self._unknown.format(
          kind=self.kind, name=name, hint=hint, names=", ".join(self.names()),
          listed=list(self.names())))
    module, attr = self._builtin[name].split(":")
    return getattr(importlib.import_module(f"{self._package}.{module}"), attr)

  def get(self, name: str, **hparams: Any) -> Any:
    """Builds method ``name`` with keyword hyperparameters."""
    return self.lookup(name)(**hparams)

  def register(self, name: str, entry: Any, *, replace: bool = False) -> None:
    """Adds a user's own entry under ``name``.

    Registering a name again replaces the earlier user entry; a built-in
    name is refused unless ``replace=True`` (then the entry shadows it).
    """
    if name in self._builtin and not replace:
      raise ValueError(f"{self.kind.capitalize()} {name!r} is built in; register it with "
                       "replace=True to replace it, or choose another name.")
    self.registered[name] = entry
