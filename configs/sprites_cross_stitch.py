"""Sprites with cross-stitch networks: one small CNN column per task.

Every column's conv block and dense layer is followed by a 5x5 cross-stitch
unit (initial diagonal ``alpha_self``). ``get_config("sluice")`` gives a
sluice network instead: MLP columns of equal widths, 2 subspaces per layer
and a learned combination of the layer outputs. Everything else is
``configs/sprites.py``.
"""

from mtl_jax.config_files import sibling


def get_config(arg=None):
  arg = arg or "cnn"
  if arg not in ("cnn", "sluice"):
    raise ValueError(f"configs/sprites_cross_stitch.py: unknown arg {arg!r}; use "
                     "'cnn' or 'sluice'.")
  c = sibling(__file__, "sprites", "cnn" if arg == "cnn" else "mlp")
  c.name = "sprites_cross_stitch"
  c.workdir = "runs/sprites_cross_stitch"
  c.model.arch = "cross_stitch"
  c.model.alpha_self = 0.9
  c.model.sluice = arg == "sluice"
  if arg == "cnn":
    c.model.trunk.features = 32
  else:
    c.model.trunk.hidden = (64, 64, 64)
    c.model.subspaces = 2
  return c
