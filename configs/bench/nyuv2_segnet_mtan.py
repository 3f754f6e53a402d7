"""NYUv2 with SegNet-MTAN: Protocol A of the multi-task literature.

Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention", CVPR
2019 (the network); the protocol of Navon et al., "Multi-Task Learning as a
Bargaining Game", ICML 2022 (Nash-MTL), followed by FAMO (NeurIPS 2023) and
FairGrad (ICML 2024): 795 training images at 288x384, 13-class segmentation,
depth and surface normals; Adam, learning rate 1e-4 halved after 100 of 200
epochs, batch 2; Delta_m over the 9 test metrics. Published values:
``mtl_jax/report/published.py`` (shown by ``mtl-jax report``).

Needs the MTAN ``.npy`` release under ``data.path`` or
``<data_dir>/nyuv2`` (README, "Benchmark datasets").

Departures from the published protocol, each a limit of this config:

* the papers report the test metrics averaged over the last 10 epochs (3
  seeds); the trainer reports the final evaluation (``train.eval_every``
  logs every epoch's test metrics to ``metrics.jsonl``, so the average of the
  last 10 can be read from the run);
* our training pipeline drops the last incomplete batch (397 steps per
  epoch; the authors' loader runs 398 with a last batch of 1).
"""

import ml_collections

STEPS_PER_EPOCH = 795 // 2
EPOCHS = 200


def get_config(arg=None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.name = "nyuv2_segnet_mtan"
  c.seed = 0
  c.workdir = "runs/nyuv2_segnet_mtan"
  c.benchmark = dict(name="nyuv2", protocol="A")
  c.data = dict(name="nyuv2", data_dir=ml_collections.config_dict.placeholder(str),
                path=ml_collections.config_dict.placeholder(str), height=288, width=384)
  c.tasks = {
      "segmentation": dict(kind="segmentation", num_classes=13, ignore_label=-1),
      "depth": dict(kind="depth"),
      "normals": dict(kind="normals"),
  }
  # MTAN on the SegNet encoder-decoder at the paper's widths.
  c.model = dict(arch="mtan", trunk=dict(kind="segnet"))
  c.compare_methods = ("equal", "uncertainty", "mgda", "pcgrad", "cagrad", "imtl_g",
                       "nash_mtl", "famo", "fairgrad")
  c.method = dict(weighting="equal", weighting_kwargs={},
                  aggregation=ml_collections.config_dict.placeholder(str),
                  aggregation_kwargs={}, engine="auto", every=1)
  c.optimizer = dict(name="adam", learning_rate=1e-4,
                     task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="step", decay_every=STEPS_PER_EPOCH * EPOCHS // 2,
                     decay_factor=0.5, weight_decay=0.0, clip_norm=0.0)
  c.train = dict(num_steps=STEPS_PER_EPOCH * EPOCHS, batch_size=2, eval_batch_size=6,
                 log_every=STEPS_PER_EPOCH, eval_every=STEPS_PER_EPOCH,
                 checkpoint_every=STEPS_PER_EPOCH * 10, max_to_keep=2,
                 nonfinite="skip", max_nonfinite=10)
  return c
