"""3D Shapes (Burgess & Kim 2018): six factors of a rendered 3D scene as tasks.

Needs TFDS ``shapes3d`` prepared under ``data.data_dir`` (see the README,
"Catalog datasets"). 480,000 64x64 RGB images (10% validation and 10% test
split off by seed). Tasks: floor, wall and object hue (10 classes each: hues
are cyclic), scale (8 classes), shape (4) and orientation (regression: the
angle in [-30, 30] degrees over 30). A 4-block CNN shared by linear heads;
equal loss weights.
"""

import ml_collections


def get_config(arg=None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.name = "shapes3d"
  c.seed = 0
  c.workdir = "runs/shapes3d"
  c.data = dict(name="shapes3d", data_dir=ml_collections.config_dict.placeholder(str),
                image_size=64, validation_fraction=0.1, test_fraction=0.1, seed=0,
                download=False)
  hue = dict(kind="multiclass", num_classes=10, metrics=("accuracy",))
  c.tasks = {
      "floor_hue": dict(hue), "wall_hue": dict(hue), "object_hue": dict(hue),
      "scale": dict(kind="multiclass", num_classes=8, metrics=("accuracy",)),
      "shape": dict(kind="multiclass", num_classes=4, metrics=("accuracy",)),
      "orientation": dict(kind="regression", dim=1, metrics=("mae", "r2")),
  }
  c.model = dict(arch="hard_sharing",
                 trunk=dict(kind="cnn", channels=(32, 32, 64, 64), features=256,
                            batch_norm=False, act="relu"),
                 head=dict(hidden=(), act="relu"))
  c.compare_methods = ("equal", "uncertainty", "gls", "pcgrad", "upgrad")
  c.method = dict(weighting="equal", weighting_kwargs={}, aggregation="none",
                  aggregation_kwargs={}, engine="auto", every=1)
  c.optimizer = dict(name="adam", learning_rate=1e-3,
                     task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="cosine", warmup_steps=0, weight_decay=0.0, clip_norm=0.0)
  c.train = dict(num_steps=10000, batch_size=128, eval_batch_size=1000, log_every=100,
                 eval_every=0, checkpoint_every=2000, max_to_keep=2,
                 nonfinite="skip", max_nonfinite=10)
  return c
