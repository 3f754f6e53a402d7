"""Sprites with mixture-of-experts models on the flattened 32x32 images.

``get_config(arg)``: ``"mmoe"`` (Ma et al., KDD 2018; default), ``"dselect_k"``
(MMoE with DSelect-k gates, Hazimeh et al., NeurIPS 2021), ``"cgc"`` or
``"ple"`` (Tang et al., RecSys 2020). Experts are MLPs of 64 units; 4 shared
experts for MMoE / DSelect-k, 2 shared + 1 per task for CGC / PLE.
"""

import ml_collections

TOWER = dict(hidden=(32,), act="relu")


def _model(arg: str) -> dict:
  if arg in ("mmoe", "dselect_k"):
    return dict(arch=arg, experts=dict(num=4, hidden=(64,), act="relu"),
                gate="softmax" if arg == "mmoe" else "dselect_k", k=2, gamma=1.0,
                head=TOWER)
  if arg in ("cgc", "ple"):
    return dict(arch=arg, levels=2 if arg == "ple" else 1, gate="softmax",
                experts=dict(num_shared=2, num_task=1, hidden=(64,), act="relu"),
                head=TOWER)
  raise ValueError(f"configs/sprites_mmoe.py: unknown arg {arg!r}; use 'mmoe', "
                   "'dselect_k', 'cgc' or 'ple'.")


def get_config(arg=None) -> ml_collections.ConfigDict:
  arg = arg or "mmoe"
  c = ml_collections.ConfigDict()
  c.name = f"sprites_{arg}"
  c.seed = 0
  c.workdir = f"runs/sprites_{arg}"
  c.data = dict(name="sprites", data_dir=ml_collections.config_dict.placeholder(str), image_size=32,
                num_train=8000, num_validation=1000, num_test=2000)
  c.tasks = {
      "shape": dict(kind="multiclass", num_classes=3, metrics=("accuracy",)),
      "scale": dict(kind="multiclass", num_classes=6, metrics=("accuracy",)),
      "orientation": dict(kind="regression", dim=2, metrics=("mae",)),
      "x": dict(kind="regression", dim=1, metrics=("mae",)),
      "y": dict(kind="regression", dim=1, metrics=("mae",)),
  }
  c.model = _model(arg)
  c.method = dict(weighting="equal", weighting_kwargs={}, aggregation="none",
                  aggregation_kwargs={}, engine="auto")
  c.optimizer = dict(name="adam", learning_rate=2e-3, task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="constant", warmup_steps=0, weight_decay=0.0,
                     clip_norm=0.0)
  c.train = dict(num_steps=1500, batch_size=64, eval_batch_size=500, log_every=50,
                 eval_every=0, checkpoint_every=500, max_to_keep=2,
                 nonfinite="skip", max_nonfinite=10)
  return c
