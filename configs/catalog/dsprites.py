"""dSprites (Matthey et al. 2017): shape, scale, orientation, x, y of one white sprite.

Needs TFDS ``dsprites`` prepared under ``data.data_dir`` (see the README,
"Catalog datasets"). The tasks of ``configs/sprites.py`` on the real dSprites
images (737,280; 10% validation and 10% test split off by seed): shape (3
classes), scale (6), orientation as ``(sin k angle, cos k angle)`` with ``k``
the shape's symmetry, x and y in [0, 1]. A 4-block CNN shared by linear heads;
equal loss weights.
"""

import ml_collections


def get_config(arg=None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.name = "dsprites"
  c.seed = 0
  c.workdir = "runs/dsprites"
  c.data = dict(name="dsprites", data_dir=ml_collections.config_dict.placeholder(str),
                image_size=64, validation_fraction=0.1, test_fraction=0.1, seed=0,
                download=False)
  c.tasks = {
      "shape": dict(kind="multiclass", num_classes=3, metrics=("accuracy",)),
      "scale": dict(kind="multiclass", num_classes=6, metrics=("accuracy",)),
      "orientation": dict(kind="regression", dim=2, metrics=("mae", "r2")),
      "x": dict(kind="regression", dim=1, metrics=("mae", "r2")),
      "y": dict(kind="regression", dim=1, metrics=("mae", "r2")),
  }
  c.model = dict(arch="hard_sharing",
                 trunk=dict(kind="cnn", channels=(32, 32, 64, 64), features=256,
                            batch_norm=False, act="relu"),
                 head=dict(hidden=(), act="relu"))
  c.compare_methods = ("equal", "uncertainty", "gls", "pcgrad", "upgrad")
  c.method = dict(weighting="equal", weighting_kwargs={},
                  aggregation=ml_collections.config_dict.placeholder(str),
                  aggregation_kwargs={}, engine="auto", every=1)
  c.optimizer = dict(name="adam", learning_rate=1e-3,
                     task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="cosine", warmup_steps=0, weight_decay=0.0, clip_norm=0.0)
  c.train = dict(num_steps=10000, batch_size=128, eval_batch_size=1000, log_every=100,
                 eval_every=0, checkpoint_every=2000, max_to_keep=2,
                 nonfinite="skip", max_nonfinite=10)
  return c
