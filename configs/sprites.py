"""Sprites: 5 tasks (shape, scale, orientation, x, y) on procedural dSprites-style images.

The README's main job: ``mtl-jax compare --config configs/sprites.py``.
``get_config("mlp")`` swaps the CNN trunk for an MLP.
"""

import ml_collections


def get_config(arg: str = "cnn") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "sprites"
  c.seed = 0
  c.workdir = "runs/sprites"
  c.data = dict(name="sprites", data_dir=ml_collections.config_dict.placeholder(str), image_size=32,
                num_train=8000, num_validation=1000, num_test=2000)
  c.tasks = {
      "shape": dict(kind="multiclass", num_classes=3, metrics=("accuracy",)),
      "scale": dict(kind="multiclass", num_classes=6, metrics=("accuracy",)),
      "orientation": dict(kind="regression", dim=2, metrics=("mae", "r2")),
      "x": dict(kind="regression", dim=1, metrics=("mae", "r2")),
      "y": dict(kind="regression", dim=1, metrics=("mae", "r2")),
  }
  if arg == "mlp":
    trunk = dict(kind="mlp", hidden=(256, 128), act="relu")
  elif arg == "cnn":
    trunk = dict(kind="cnn", channels=(8, 16), features=64, batch_norm=False, act="relu")
  else:
    raise ValueError(f"configs/sprites.py: unknown arg {arg!r}; use 'cnn' or 'mlp'.")
  c.model = dict(arch="hard_sharing", trunk=trunk, head=dict(hidden=(), act="relu"))
  # `mtl-jax compare` runs these next to the single-task baselines.
  c.compare_methods = ("equal", "uncertainty", "gls")
  c.method = dict(weighting="equal", weighting_kwargs={},
                  aggregation=ml_collections.config_dict.placeholder(str),
                  aggregation_kwargs={}, engine="auto", every=1)
  c.optimizer = dict(name="adam", learning_rate=2e-3, task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="constant", warmup_steps=0, weight_decay=0.0,
                     clip_norm=0.0)
  c.train = dict(num_steps=1000, batch_size=64, eval_batch_size=500, log_every=50,
                 eval_every=0, checkpoint_every=500, max_to_keep=2,
                 nonfinite="skip", max_nonfinite=10, log_cosine=True,
                 # Mixed precision and gradient accumulation (README): "bfloat16"
                 # computes the model in bf16 on fp32 parameters; M > 1 runs the
                 # batch as M micro-batches with the same update.
                 compute_dtype="float32", accumulation_steps=1)
  return c
