"""Sprites in multi-input mode: each group of tasks learns from its own examples.

The training split is cut into two disjoint halves, as if two datasets had been
labelled for different things: source ``category`` (the first half) labels
shape and scale, source ``pose`` (the second half) labels orientation and the
x / y position. Every step concatenates one batch of each source
(``train.batch_size`` = 64 rows in all: 32 per source), and a task's loss only
sees its own source's rows. Both sources evaluate on the whole validation and
test splits, so the metrics compare with ``configs/sprites.py``. Hard
sharing, equal weighting; everything else is ``configs/sprites.py``
(``get_config("mlp")`` for the MLP trunk). See README "Multi-input mode".
"""

from mtl_jax.config_files import sibling


def get_config(arg=None):
  c = sibling(__file__, "sprites", arg or "cnn")
  c.name = "sprites_multi_input"
  c.workdir = "runs/sprites_multi_input"
  # The keys already in c.data (name, image_size, split sizes) are shared by
  # both sources.
  c.data.sources = dict(
      category=dict(tasks=["shape", "scale"], split=dict(train="train[:50%]")),
      pose=dict(tasks=["orientation", "x", "y"], split=dict(train="train[50%:]")))
  return c
