"""Scenes: semantic segmentation, depth and surface normals on procedural 3D scenes.

The embedded stand-in for NYUv2 (``mtl_jax.data.scenes``: objects on a ground
plane, the three per-pixel tasks from one ray-cast geometry), with the
metrics and Delta_m of the NYUv2 benchmark: mIoU and pixel accuracy, absolute
and relative depth error, mean and median angle error and the fractions of
pixels within 11.25, 22.5 and 30 degrees. A small SegNet encoder-decoder
(Badrinarayanan et al. 2017, the MTAN paper's NYUv2 network at reduced width)
shared by three dense heads (hard sharing). ``configs/scenes_mtan.py`` puts
MTAN's task attention on the same SegNet.

``mtl-jax compare --config configs/scenes.py --methods equal,uncertainty,nash_mtl``
trains the single-task baselines and the three methods (README, "Dense
prediction").
"""

import ml_collections


def get_config(arg=None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.name = "scenes"
  c.seed = 0
  c.workdir = "runs/scenes"
  c.data = dict(name="scenes", data_dir=ml_collections.config_dict.placeholder(str),
                image_size=32, num_train=1000, num_validation=200, num_test=200)
  c.tasks = {
      "segmentation": dict(kind="segmentation", num_classes=5, ignore_label=-1),
      "depth": dict(kind="depth"),
      "normals": dict(kind="normals"),
  }
  c.model = dict(arch="hard_sharing",
                 trunk=dict(kind="segnet", channels=(16, 32, 64), layers=(1, 1, 1)),
                 head=dict(dense="conv"))
  c.compare_methods = ("equal", "uncertainty", "nash_mtl")
  c.method = dict(weighting="equal", weighting_kwargs={},
                  aggregation=ml_collections.config_dict.placeholder(str),
                  aggregation_kwargs={}, engine="auto", every=1)
  c.optimizer = dict(name="adam", learning_rate=2e-3,
                     task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="constant", warmup_steps=0, weight_decay=0.0, clip_norm=0.0)
  c.train = dict(num_steps=400, batch_size=16, eval_batch_size=100, log_every=50,
                 eval_every=0, checkpoint_every=0, max_to_keep=2,
                 nonfinite="skip", max_nonfinite=10, log_cosine=True,
                 compute_dtype="float32", accumulation_steps=1)
  return c
