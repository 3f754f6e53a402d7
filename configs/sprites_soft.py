"""Sprites with soft parameter sharing: one CNN tower per task, pulled together.

Five stacked per-task towers (one batched op), coupled by an L2-to-the-mean
penalty on their kernels (``model.penalties``, see :mod:`mtl_jax.penalties`).
``get_config("mlp")`` uses MLP towers instead. Everything else is
``configs/sprites.py``.
"""

from mtl_jax.config_files import sibling


def get_config(arg=None):
  arg = arg or "cnn"
  if arg not in ("cnn", "mlp"):
    raise ValueError(f"configs/sprites_soft.py: unknown arg {arg!r}; use 'cnn' or 'mlp'.")
  c = sibling(__file__, "sprites", arg)
  c.name = "sprites_soft"
  c.workdir = "runs/sprites_soft"
  c.model.arch = "soft_sharing"
  if arg == "mlp":
    c.model.trunk.hidden = (128, 64)
  else:
    c.model.trunk.features = 32
  c.model.penalties = {"l2_to_mean": 1e-3}
  return c
