"""Loads ``configs/<name>.py`` by path, as the CLI does."""

import pathlib

from mtl_jax import config_files

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"


def names() -> list[str]:
  return sorted(p.stem for p in CONFIG_DIR.glob("*.py") if not p.stem.startswith("_"))


def load(name: str, arg=None):
  return config_files.load(CONFIG_DIR / f"{name}.py", arg)
