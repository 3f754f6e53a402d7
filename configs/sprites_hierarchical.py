"""Sprites with hierarchical sharing: low-level tasks read lower trunk layers.

Position (x, y) is supervised at the first MLP layer, scale at the second,
shape and orientation at the last (Søgaard & Goldberg, ACL 2016). Everything
else is ``configs/sprites.py``.
"""

from mtl_jax.config_files import sibling


def get_config(arg=None):
  if arg not in (None, "mlp"):
    raise ValueError(f"configs/sprites_hierarchical.py: unknown arg {arg!r}; use 'mlp'.")
  c = sibling(__file__, "sprites", "mlp")
  c.name = "sprites_hierarchical"
  c.workdir = "runs/sprites_hierarchical"
  c.model.arch = "hierarchical"
  c.model.trunk.hidden = (256, 128, 64)
  c.model.task_depth = {"x": 1, "y": 1, "scale": 2, "shape": 3, "orientation": 3}
  return c
