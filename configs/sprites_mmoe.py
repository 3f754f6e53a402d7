"""Sprites with mixture-of-experts models on the flattened 32x32 images.

``get_config(arg)``: ``"mmoe"`` (Ma et al., KDD 2018; default), ``"dselect_k"``
(MMoE with DSelect-k gates, Hazimeh et al., NeurIPS 2021), ``"cgc"`` or
``"ple"`` (Tang et al., RecSys 2020). Experts are MLPs of 64 units; 4 shared
experts for MMoE / DSelect-k, 2 shared + 1 per task for CGC / PLE. Everything
else is ``configs/sprites.py``.
"""

from mtl_jax.config_files import sibling

TOWER = dict(hidden=(32,), act="relu")


def _model(arg: str) -> dict:
  if arg in ("mmoe", "dselect_k"):
    return dict(arch=arg, experts=dict(num=4, hidden=(64,), act="relu"),
                gate="softmax" if arg == "mmoe" else "dselect_k", k=2, gamma=1.0,
                head=TOWER)
  if arg in ("cgc", "ple"):
    return dict(arch=arg, levels=2 if arg == "ple" else 1, gate="softmax",
                experts=dict(num_shared=2, num_task=1, hidden=(64,), act="relu"),
                head=TOWER)
  raise ValueError(f"configs/sprites_mmoe.py: unknown arg {arg!r}; use 'mmoe', "
                   "'dselect_k', 'cgc' or 'ple'.")


def get_config(arg=None):
  arg = arg or "mmoe"
  model = _model(arg)
  c = sibling(__file__, "sprites")  # data, tasks, method, training
  c.name = f"sprites_{arg}"
  c.workdir = f"runs/sprites_{arg}"
  c.model = model
  return c
