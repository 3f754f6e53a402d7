"""Sprites with cross-stitch networks: one small CNN column per task.

Every column's conv block and dense layer is followed by a 5x5 cross-stitch
unit (initial diagonal ``alpha_self``). ``get_config("sluice")`` gives a
sluice network instead: MLP columns of equal widths, 2 subspaces per layer
and a learned combination of the layer outputs.
"""

import ml_collections


def get_config(arg=None) -> ml_collections.ConfigDict:
  arg = arg or "cnn"
  c = ml_collections.ConfigDict()
  c.name = "sprites_cross_stitch"
  c.seed = 0
  c.workdir = "runs/sprites_cross_stitch"
  c.data = dict(name="sprites", data_dir=ml_collections.config_dict.placeholder(str), image_size=32,
                num_train=8000, num_validation=1000, num_test=2000)
  c.tasks = {
      "shape": dict(kind="multiclass", num_classes=3, metrics=("accuracy",)),
      "scale": dict(kind="multiclass", num_classes=6, metrics=("accuracy",)),
      "orientation": dict(kind="regression", dim=2, metrics=("mae",)),
      "x": dict(kind="regression", dim=1, metrics=("mae",)),
      "y": dict(kind="regression", dim=1, metrics=("mae",)),
  }
  if arg == "cnn":
    trunk = dict(kind="cnn", channels=(8, 16), features=32, batch_norm=False, act="relu")
    stitch = dict(alpha_self=0.9, sluice=False)
  elif arg == "sluice":
    trunk = dict(kind="mlp", hidden=(64, 64, 64), act="relu")
    stitch = dict(alpha_self=0.9, sluice=True, subspaces=2)
  else:
    raise ValueError(f"configs/sprites_cross_stitch.py: unknown arg {arg!r}; use "
                     "'cnn' or 'sluice'.")
  c.model = dict(arch="cross_stitch", trunk=trunk, head=dict(hidden=(), act="relu"),
                 **stitch)
  c.method = dict(weighting="equal", weighting_kwargs={}, aggregation="none",
                  aggregation_kwargs={}, engine="auto")
  c.optimizer = dict(name="adam", learning_rate=2e-3, task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="constant", warmup_steps=0, weight_decay=0.0,
                     clip_norm=0.0)
  c.train = dict(num_steps=1500, batch_size=64, eval_batch_size=500, log_every=50,
                 eval_every=0, checkpoint_every=500, max_to_keep=2,
                 nonfinite="skip", max_nonfinite=10)
  return c
