"""3D Shapes (Burgess & Kim 2018): six factors of a rendered 3D scene as tasks.

Needs TFDS ``shapes3d`` prepared under ``data.data_dir`` (see the README,
"Catalog datasets"). 480,000 64x64 RGB images (10% validation and 10% test
split off by seed). Tasks: floor, wall and object hue (10 classes each: hues
are cyclic), scale (8 classes), shape (4) and orientation (regression: the
angle in [-30, 30] degrees over 30). Model, methods and schedule are
``configs/catalog/dsprites.py``'s (a 4-block CNN shared by linear heads).
"""

from mtl_jax.config_files import sibling


def get_config(arg=None):
  c = sibling(__file__, "dsprites", arg)
  c.name = "shapes3d"
  c.workdir = "runs/shapes3d"
  c.data.name = "shapes3d"
  hue = dict(kind="multiclass", num_classes=10, metrics=("accuracy",))
  c.tasks = {
      "floor_hue": dict(hue), "wall_hue": dict(hue), "object_hue": dict(hue),
      "scale": dict(kind="multiclass", num_classes=8, metrics=("accuracy",)),
      "shape": dict(kind="multiclass", num_classes=4, metrics=("accuracy",)),
      "orientation": dict(kind="regression", dim=1, metrics=("mae", "r2")),
  }
  return c
