"""Cityscapes with DeepLabV3+ on a dilated ResNet-50: Protocol B (LibMTL).

LibMTL's ``examples/cityscapes`` (Lin & Zhang, JMLR 2023; DB-MTL's table):
7-class segmentation and depth at 128x256; Adam 1e-4, weight decay 1e-5,
halved every 100 epochs, batch 64, 200 epochs; best validation epoch;
Delta_p. Same departures as ``nyuv2_deeplab.py`` (no ImageNet weights; the
best epoch read from the logged evaluations).
"""

from mtl_jax.config_files import sibling

STEPS_PER_EPOCH = 2975 // 64
EPOCHS = 200


def get_config(arg=None):
  del arg
  c = sibling(__file__, "nyuv2_deeplab")
  c.name = "cityscapes_deeplab"
  c.workdir = "runs/cityscapes_deeplab"
  c.benchmark = dict(name="cityscapes", protocol="B")
  c.data = dict(name="cityscapes", data_dir=c.data.data_dir, path=c.data.path,
                height=128, width=256, num_classes=7)
  c.tasks = {
      "segmentation": dict(kind="segmentation", num_classes=7, ignore_label=-1),
      "depth": dict(kind="depth"),
  }
  c.compare_methods = ("equal", "db_mtl")
  c.optimizer.decay_every = STEPS_PER_EPOCH * EPOCHS // 2
  c.train.update(dict(num_steps=STEPS_PER_EPOCH * EPOCHS, batch_size=64, eval_batch_size=20,
                      log_every=STEPS_PER_EPOCH, eval_every=STEPS_PER_EPOCH,
                      checkpoint_every=STEPS_PER_EPOCH * 10))
  return c
