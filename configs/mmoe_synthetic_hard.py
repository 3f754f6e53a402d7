"""MMoE synthetic regression with hard parameter sharing (the shared-bottom model).

The baseline of Ma et al. (KDD 2018) on :mod:`mtl_jax.data.mmoe_synthetic`:
one shared ReLU layer of 128 units (as many as MMoE's 8 experts x 16) and a
tower of 8 units per task, ~15k parameters like the MMoE model of
``configs/mmoe_synthetic.py``. The paper's finding is that this model loses
much more than MMoE as the task correlation ``p`` falls.

``get_config(arg)``: ``arg`` is the task correlation ``p`` (default ``"0.5"``),
e.g. ``--config configs/mmoe_synthetic_hard.py:0.1``.
"""

import ml_collections


def get_config(arg: str = "0.5") -> ml_collections.ConfigDict:
  try:
    p = float(arg)
  except ValueError:
    raise ValueError(f"configs/mmoe_synthetic_hard.py: arg must be the task "
                     f"correlation p in [0, 1], got {arg!r}.") from None
  c = ml_collections.ConfigDict()
  c.name = "mmoe_synthetic_hard"
  c.seed = 0
  c.workdir = f"runs/mmoe_synthetic_hard/p{p:g}"
  c.data = dict(name="mmoe_synthetic", data_dir=ml_collections.config_dict.placeholder(str),
                correlation=p, input_dim=100, num_sines=10, scale=1.0, noise=0.01,
                num_train=10000, num_validation=1000, num_test=2000, seed=0)
  spec = dict(kind="regression", dim=1, metrics=("mse", "mae"))
  c.tasks = {"y1": dict(spec), "y2": dict(spec)}
  c.model = dict(arch="hard_sharing", trunk=dict(kind="mlp", hidden=(128,), act="relu"),
                 head=dict(hidden=(8,), act="relu"))
  c.compare_methods = ("equal", "uncertainty", "pcgrad")
  c.method = dict(weighting="equal", weighting_kwargs={}, aggregation="none",
                  aggregation_kwargs={}, engine="auto", every=1)
  c.optimizer = dict(name="adam", learning_rate=1e-3,
                     task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="constant", warmup_steps=0, weight_decay=0.0, clip_norm=0.0)
  c.train = dict(num_steps=3000, batch_size=128, eval_batch_size=1000, log_every=100,
                 eval_every=0, checkpoint_every=0, max_to_keep=1,
                 nonfinite="skip", max_nonfinite=10)
  return c
