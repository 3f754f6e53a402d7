"""CelebA, 40 binary attributes: the FAMO paper's table (Protocol A).

``configs/catalog/celeb_a.py`` (a 4-block CNN shared by 40 linear heads,
64x64 images, Adam 3e-4, about 15 epochs of batch 256), named as the
benchmark so ``mtl-jax report`` shows the published Delta_m of Liu et al.,
"FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023 beside the run.
Needs TFDS ``celeb_a`` (README, "Catalog datasets"). Departures: our trunk
and schedule are not the paper's, and our metric is accuracy per attribute
(the published table's metric is noted in ``mtl_jax/report/published.py``).
"""

import os

from mtl_jax import config_files


def get_config(arg=None):
  del arg
  here = os.path.dirname(os.path.abspath(__file__))
  c = config_files.load(os.path.join(here, "..", "catalog", "celeb_a.py"))
  c.name = "celeb_a_bench"
  c.workdir = "runs/celeb_a_bench"
  c.benchmark = dict(name="celeb_a", protocol="A")
  return c
