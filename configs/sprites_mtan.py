"""Sprites with MTAN (Liu, Johns & Davison, CVPR 2019): per-task attention masks.

A shared CNN backbone (two conv blocks) with one attention module per task and
block; ``get_config("mlp")`` uses the MLP variant (dense blocks). Data and
tasks, method and training are ``configs/sprites.py``'s.
"""

from mtl_jax.config_files import sibling


def get_config(arg=None):
  arg = arg or "cnn"
  if arg not in ("cnn", "mlp"):
    raise ValueError(f"configs/sprites_mtan.py: unknown arg {arg!r}; use 'cnn' or 'mlp'.")
  c = sibling(__file__, "sprites", arg)
  c.name = "sprites_mtan"
  c.workdir = "runs/sprites_mtan"
  c.model.arch = "mtan"
  if arg == "cnn":
    c.model.trunk = dict(kind="cnn", channels=(16, 32), features=64, kernel_size=3, act="relu")
  return c
