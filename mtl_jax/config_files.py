"""Loading ``configs/*.py`` files by path, as ``mtl-jax --config`` does.

A config file defines ``get_config(arg)``. A variant of another config loads
it with :func:`sibling` and changes what differs, so shared settings live in
one place::

  def get_config(arg=None):
    c = sibling(__file__, "sprites", arg or "cnn")
    c.model.arch = "soft_sharing"
    return c
"""

from __future__ import annotations

import importlib.util
import pathlib
from typing import Optional

import ml_collections


def load(path, arg: Optional[str] = None) -> ml_collections.ConfigDict:
  """Calls ``get_config(arg)`` (or ``get_config()``) of the file at ``path``."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"No config file {str(path)!r}.")
  spec = importlib.util.spec_from_file_location(f"mtl_jax_configs.{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg is not None else module.get_config()


def sibling(file: str, name: str, arg: Optional[str] = None) -> ml_collections.ConfigDict:
  """The config ``<name>.py`` in the same folder as ``file``."""
  return load(pathlib.Path(file).resolve().with_name(f"{name}.py"), arg)
