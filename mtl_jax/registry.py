"""Name -> factory lookup shared by the method registries.

Each registry maps a method name to ``"module:attribute"`` and imports the
module only when the method is asked for, so importing a registry stays cheap
and one method file never has to import another.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Mapping


class Registry:
  """A lazily importing name -> factory table with helpful errors."""

  def __init__(self, kind: str, package: str, entries: Mapping[str, str]):
    self.kind = kind
    self._package = package
    self._entries = dict(entries)

  def names(self) -> tuple[str, ...]:
    return tuple(sorted(self._entries))

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def factory(self, name: str) -> Callable[..., Any]:
    if name not in self._entries:
      close = difflib.get_close_matches(name, self._entries, n=1)
      hint = f" Did you mean {close[0]!r}?" if close else ""
      raise ValueError(
          f"Unknown {self.kind} {name!r}.{hint} Valid names: "
          f"{', '.join(self.names())}.")
    module, attr = self._entries[name].split(":")
    return getattr(importlib.import_module(f"{self._package}.{module}"), attr)

  def get(self, name: str, **hparams: Any) -> Any:
    """Builds method ``name`` with keyword hyperparameters."""
    return self.factory(name)(**hparams)
