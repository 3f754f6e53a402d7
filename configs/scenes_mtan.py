"""Scenes with MTAN (Liu, Johns & Davison, CVPR 2019) on the SegNet of ``scenes.py``.

Task attention modules at every encoder and decoder stage of the shared
SegNet, as the paper's NYUv2 network (``mtl_jax.models.mtan_segnet``), at
the reduced width of ``configs/scenes.py``; data, tasks, method and training
are that config's.
"""

from mtl_jax.config_files import sibling


def get_config(arg=None):
  del arg
  c = sibling(__file__, "scenes")
  c.name = "scenes_mtan"
  c.workdir = "runs/scenes_mtan"
  c.model = dict(arch="mtan", trunk=dict(kind="segnet", channels=(16, 32, 64), layers=(1, 1, 1)))
  return c
