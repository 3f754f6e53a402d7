"""NYUv2 with DeepLabV3+ on a dilated ResNet-50: Protocol B (LibMTL).

Lin & Zhang, "LibMTL: A Python Library for Multi-Task Learning", JMLR 2023,
``examples/nyu``, the setting of the DB-MTL paper's Table (Lin et al.,
"Dual-Balancing for Multi-Task Learning", 2023): a dilated ResNet-50 encoder
(output stride 8) shared by per-task ASPP heads; Adam, learning rate 1e-4,
weight decay 1e-5, halved every 100 epochs, batch 8, 200 epochs; the epoch
with the best validation results (LibMTL selects on the test folder, as the
release has no validation split). Statistic: Delta_p (higher is better).

Departures: LibMTL's ResNet-50 is ImageNet-pretrained; nothing downloads
here, so this encoder starts from random weights and the published numbers
are not reachable until pretrained weights are loaded. The trainer reports
the final evaluation; the per-epoch evaluations in ``metrics.jsonl`` give
the best one.
"""

from mtl_jax.config_files import sibling

STEPS_PER_EPOCH = 795 // 8
EPOCHS = 200


def get_config(arg=None):
  del arg
  c = sibling(__file__, "nyuv2_segnet_mtan")
  c.name = "nyuv2_deeplab"
  c.workdir = "runs/nyuv2_deeplab"
  c.benchmark = dict(name="nyuv2", protocol="B")
  c.model = dict(arch="hard_sharing",
                 trunk=dict(kind="dilated_resnet", depth=50, output_stride=8),
                 head=dict(dense="aspp"))
  c.compare_methods = ("equal", "gls", "nash_mtl", "db_mtl")
  c.optimizer.update(dict(name="adam_l2", learning_rate=1e-4, weight_decay=1e-5,
                          decay_every=STEPS_PER_EPOCH * EPOCHS // 2))
  c.train.update(dict(num_steps=STEPS_PER_EPOCH * EPOCHS, batch_size=8, eval_batch_size=6,
                      log_every=STEPS_PER_EPOCH, eval_every=STEPS_PER_EPOCH,
                      checkpoint_every=STEPS_PER_EPOCH * 10))
  return c
