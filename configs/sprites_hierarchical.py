"""Sprites with hierarchical sharing: low-level tasks read lower trunk layers.

Position (x, y) is supervised at the first MLP layer, scale at the second,
shape and orientation at the last (Søgaard & Goldberg, ACL 2016).
"""

import ml_collections


def get_config(arg=None) -> ml_collections.ConfigDict:
  if arg not in (None, "mlp"):
    raise ValueError(f"configs/sprites_hierarchical.py: unknown arg {arg!r}; use 'mlp'.")
  c = ml_collections.ConfigDict()
  c.name = "sprites_hierarchical"
  c.seed = 0
  c.workdir = "runs/sprites_hierarchical"
  c.data = dict(name="sprites", data_dir=ml_collections.config_dict.placeholder(str), image_size=32,
                num_train=8000, num_validation=1000, num_test=2000)
  c.tasks = {
      "shape": dict(kind="multiclass", num_classes=3, metrics=("accuracy",)),
      "scale": dict(kind="multiclass", num_classes=6, metrics=("accuracy",)),
      "orientation": dict(kind="regression", dim=2, metrics=("mae",)),
      "x": dict(kind="regression", dim=1, metrics=("mae",)),
      "y": dict(kind="regression", dim=1, metrics=("mae",)),
  }
  c.model = dict(arch="hierarchical", trunk=dict(kind="mlp", hidden=(256, 128, 64), act="relu"),
                 head=dict(hidden=(), act="relu"),
                 task_depth={"x": 1, "y": 1, "scale": 2, "shape": 3, "orientation": 3})
  c.method = dict(weighting="equal", weighting_kwargs={}, aggregation="none",
                  aggregation_kwargs={}, engine="auto")
  c.optimizer = dict(name="adam", learning_rate=2e-3, task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="constant", warmup_steps=0, weight_decay=0.0,
                     clip_norm=0.0)
  c.train = dict(num_steps=1500, batch_size=64, eval_batch_size=500, log_every=50,
                 eval_every=0, checkpoint_every=500, max_to_keep=2,
                 nonfinite="skip", max_nonfinite=10)
  return c
