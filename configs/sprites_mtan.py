"""Sprites with MTAN (Liu, Johns & Davison, CVPR 2019): per-task attention masks.

A shared CNN backbone (two conv blocks) with one attention module per task and
block; ``get_config("mlp")`` uses the MLP variant (dense blocks).
"""

import ml_collections


def get_config(arg=None) -> ml_collections.ConfigDict:
  arg = arg or "cnn"
  c = ml_collections.ConfigDict()
  c.name = "sprites_mtan"
  c.seed = 0
  c.workdir = "runs/sprites_mtan"
  c.data = dict(name="sprites", data_dir=ml_collections.config_dict.placeholder(str), image_size=32,
                num_train=8000, num_validation=1000, num_test=2000)
  c.tasks = {
      "shape": dict(kind="multiclass", num_classes=3, metrics=("accuracy",)),
      "scale": dict(kind="multiclass", num_classes=6, metrics=("accuracy",)),
      "orientation": dict(kind="regression", dim=2, metrics=("mae",)),
      "x": dict(kind="regression", dim=1, metrics=("mae",)),
      "y": dict(kind="regression", dim=1, metrics=("mae",)),
  }
  if arg == "mlp":
    trunk = dict(kind="mlp", hidden=(256, 128), act="relu")
  elif arg == "cnn":
    trunk = dict(kind="cnn", channels=(16, 32), features=64, kernel_size=3, act="relu")
  else:
    raise ValueError(f"configs/sprites_mtan.py: unknown arg {arg!r}; use 'cnn' or 'mlp'.")
  c.model = dict(arch="mtan", trunk=trunk, head=dict(hidden=(), act="relu"))
  c.method = dict(weighting="equal", weighting_kwargs={}, aggregation="none",
                  aggregation_kwargs={}, engine="auto")
  c.optimizer = dict(name="adam", learning_rate=2e-3, task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="constant", warmup_steps=0, weight_decay=0.0,
                     clip_norm=0.0)
  c.train = dict(num_steps=1500, batch_size=64, eval_batch_size=500, log_every=50,
                 eval_every=0, checkpoint_every=500, max_to_keep=2,
                 nonfinite="skip", max_nonfinite=10)
  return c
