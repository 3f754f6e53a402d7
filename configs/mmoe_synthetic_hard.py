"""MMoE synthetic regression with hard parameter sharing (the shared-bottom model).

The baseline of Ma et al. (KDD 2018) on :mod:`mtl_jax.data.mmoe_synthetic`:
one shared ReLU layer of 128 units (as many as MMoE's 8 experts x 16) and a
tower of 8 units per task, ~15k parameters like the MMoE model of
``configs/mmoe_synthetic.py``. The paper's finding is that this model loses
much more than MMoE as the task correlation ``p`` falls.

``get_config(arg)``: ``arg`` is the task correlation ``p`` (default ``"0.5"``),
e.g. ``--config configs/mmoe_synthetic_hard.py:0.1``. Everything else is
``configs/mmoe_synthetic.py:hard_sharing`` (10k training examples, learning
rate 1e-3, 3000 steps).
"""

import ml_collections

from mtl_jax.config_files import sibling


def get_config(arg: str = "0.5") -> ml_collections.ConfigDict:
  try:
    p = float(arg)
  except ValueError:
    raise ValueError(f"configs/mmoe_synthetic_hard.py: arg must be the task "
                     f"correlation p in [0, 1], got {arg!r}.") from None
  c = sibling(__file__, "mmoe_synthetic", "hard_sharing")
  c.name = "mmoe_synthetic_hard"
  c.workdir = f"runs/mmoe_synthetic_hard/p{p:g}"
  c.data.correlation = p
  c.data.num_train = 10000
  c.model.trunk.hidden = (128,)
  c.compare_methods = ("equal", "uncertainty", "pcgrad")
  c.method.every = 1
  c.optimizer.learning_rate = 1e-3
  c.train.num_steps = 3000
  return c
