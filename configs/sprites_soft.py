"""Sprites with soft parameter sharing: one CNN tower per task, pulled together.

Five stacked per-task towers (one batched op), coupled by an L2-to-the-mean
penalty on their kernels (``model.penalties``, see :mod:`mtl_jax.penalties`).
``get_config("mlp")`` uses MLP towers instead.
"""

import ml_collections


def get_config(arg=None) -> ml_collections.ConfigDict:
  arg = arg or "cnn"
  c = ml_collections.ConfigDict()
  c.name = "sprites_soft"
  c.seed = 0
  c.workdir = "runs/sprites_soft"
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
    trunk = dict(kind="mlp", hidden=(128, 64), act="relu")
  elif arg == "cnn":
    trunk = dict(kind="cnn", channels=(8, 16), features=32, batch_norm=False, act="relu")
  else:
    raise ValueError(f"configs/sprites_soft.py: unknown arg {arg!r}; use 'cnn' or 'mlp'.")
  c.model = dict(arch="soft_sharing", trunk=trunk, head=dict(hidden=(), act="relu"),
                 penalties={"l2_to_mean": 1e-3})
  c.method = dict(weighting="equal", weighting_kwargs={}, aggregation="none",
                  aggregation_kwargs={}, engine="auto")
  c.optimizer = dict(name="adam", learning_rate=2e-3, task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="constant", warmup_steps=0, weight_decay=0.0,
                     clip_norm=0.0)
  c.train = dict(num_steps=1500, batch_size=64, eval_batch_size=500, log_every=50,
                 eval_every=0, checkpoint_every=500, max_to_keep=2,
                 nonfinite="skip", max_nonfinite=10)
  return c
