"""Loads ``configs/<name>.py`` by path, as the CLI does."""

import importlib.util
import pathlib

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"


def names() -> list[str]:
  return sorted(p.stem for p in CONFIG_DIR.glob("*.py") if not p.stem.startswith("_"))


def load(name: str, arg=None):
  spec = importlib.util.spec_from_file_location(f"configs.{name}", CONFIG_DIR / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg is not None else module.get_config()
