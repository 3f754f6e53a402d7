"""Cityscapes with SegNet-MTAN: Protocol A (Nash-MTL, FAMO, FairGrad).

As ``nyuv2_segnet_mtan.py`` on the MTAN Cityscapes release: 2975 training
and 500 test images at 128x256, 7-class segmentation and depth (Delta_m over
mIoU, pixel accuracy, absolute and relative depth error); Adam 1e-4 halved
after 100 of 200 epochs, batch 8 (Nash-MTL's ``experiments/cityscapes``).
Same departures as the NYUv2 config (final evaluation instead of the mean of
the last 10 epochs; incomplete last batch dropped).
"""

from mtl_jax.config_files import sibling

STEPS_PER_EPOCH = 2975 // 8
EPOCHS = 200


def get_config(arg=None):
  del arg
  c = sibling(__file__, "nyuv2_segnet_mtan")
  c.name = "cityscapes_segnet_mtan"
  c.workdir = "runs/cityscapes_segnet_mtan"
  c.benchmark = dict(name="cityscapes", protocol="A")
  c.data = dict(name="cityscapes", data_dir=c.data.data_dir, path=c.data.path,
                height=128, width=256, num_classes=7)
  c.tasks = {
      "segmentation": dict(kind="segmentation", num_classes=7, ignore_label=-1),
      "depth": dict(kind="depth"),
  }
  c.optimizer.decay_every = STEPS_PER_EPOCH * EPOCHS // 2
  c.train.update(dict(num_steps=STEPS_PER_EPOCH * EPOCHS, batch_size=8, eval_batch_size=20,
                      log_every=STEPS_PER_EPOCH, eval_every=STEPS_PER_EPOCH,
                      checkpoint_every=STEPS_PER_EPOCH * 10))
  return c
