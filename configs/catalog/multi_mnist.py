"""MultiMNIST (Sener & Koltun 2018): left and right digit of two overlapping MNIST digits.

Needs TFDS ``mnist`` prepared under ``data.data_dir`` (see the README, "Catalog
datasets"), or ``--config.data.download=True`` with network. A LeNet-style
trunk (conv 10 5x5, pool, conv 20 5x5, pool, dense 50) shared by two linear
heads, as in the paper; equal loss weights; ``mtl-jax compare`` adds MGDA (the
paper's method), PCGrad, CAGrad and Nash-MTL.
"""

import ml_collections


def get_config(arg=None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.name = "multi_mnist"
  c.seed = 0
  c.workdir = "runs/multi_mnist"
  c.data = dict(name="multi_mnist", data_dir=ml_collections.config_dict.placeholder(str),
                validation_fraction=0.1, pairs_per_image=1, resize=True, seed=0,
                download=False)
  spec = dict(kind="multiclass", num_classes=10, metrics=("accuracy",))
  c.tasks = {"left": dict(spec), "right": dict(spec)}
  c.model = dict(arch="hard_sharing",
                 trunk=dict(kind="cnn", channels=(10, 20), kernel_size=5, features=50,
                            batch_norm=False, act="relu"),
                 head=dict(hidden=(), act="relu"))
  c.compare_methods = ("equal", "mgda", "pcgrad", "cagrad", "nash_mtl")
  c.method = dict(weighting="equal", weighting_kwargs={},
                  aggregation=ml_collections.config_dict.placeholder(str),
                  aggregation_kwargs={}, engine="auto", every=1)
  c.optimizer = dict(name="adam", learning_rate=1e-3,
                     task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="cosine", warmup_steps=0, weight_decay=0.0, clip_norm=0.0)
  c.train = dict(num_steps=4000, batch_size=256, eval_batch_size=1000, log_every=100,
                 eval_every=1000, checkpoint_every=1000, max_to_keep=2,
                 nonfinite="skip", max_nonfinite=10)
  return c
