"""multi_digits: the MultiMNIST recipe on scikit-learn's 8x8 digits (no download).

Tasks ``left`` and ``right`` (which digit, 10 classes each) from one image of
two overlapping digits (:mod:`mtl_jax.data.multi_digits`). A small CNN with
hard parameter sharing and equal loss weights; ``mtl-jax compare`` adds MGDA
(as in Sener & Koltun 2018, who introduced MultiMNIST) and PCGrad.
``get_config("mlp")`` swaps the CNN trunk for an MLP.
"""

import ml_collections


def get_config(arg: str = "cnn") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "multi_digits"
  c.seed = 0
  c.workdir = "runs/multi_digits"
  c.data = dict(name="multi_digits", data_dir=ml_collections.config_dict.placeholder(str),
                pairs_per_image=5, resize=True, validation_fraction=0.1,
                test_fraction=0.2, seed=0)
  spec = dict(kind="multiclass", num_classes=10, metrics=("accuracy",))
  c.tasks = {"left": dict(spec), "right": dict(spec)}
  if arg == "cnn":  # 8x8 -> 4x4 -> 2x2
    trunk = dict(kind="cnn", channels=(16, 32), features=64, batch_norm=False, act="relu")
  elif arg == "mlp":
    trunk = dict(kind="mlp", hidden=(128, 64), act="relu")
  else:
    raise ValueError(f"configs/multi_digits.py: unknown arg {arg!r}; use 'cnn' or 'mlp'.")
  c.model = dict(arch="hard_sharing", trunk=trunk, head=dict(hidden=(), act="relu"))
  c.compare_methods = ("equal", "mgda", "pcgrad")
  c.method = dict(weighting="equal", weighting_kwargs={},
                  aggregation=ml_collections.config_dict.placeholder(str),
                  aggregation_kwargs={}, engine="auto", every=1)
  c.optimizer = dict(name="adam", learning_rate=2e-3,
                     task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="constant", warmup_steps=0, weight_decay=0.0, clip_norm=0.0)
  c.train = dict(num_steps=2000, batch_size=64, eval_batch_size=500, log_every=50,
                 eval_every=0, checkpoint_every=500, max_to_keep=2,
                 nonfinite="skip", max_nonfinite=10)
  return c
