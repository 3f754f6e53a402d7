"""CelebA: 40 binary face attributes as 40 tasks (Liu et al., ICCV 2015).

Needs TFDS ``celeb_a`` prepared under ``data.data_dir`` (see the README,
"Catalog datasets"). Images resized to 64x64 (as in Sener & Koltun 2018); a
4-block CNN with batch normalisation (64 -> 4 pixels, 256 channels, dense 512)
shared by 40 linear binary heads; equal loss weights; ~15 epochs of batch 256
(9.5k steps), Adam 3e-4. ``mtl-jax compare`` adds the methods of the
published CelebA table (Delta_m %: LS 4.15, UW 3.23, PCGrad 3.17, CAGrad 2.48,
Nash-MTL 2.84, FAMO 1.21; Liu et al., FAMO, NeurIPS 2023), to compare in
spirit: our trunk and schedule are not the papers'.
"""

import ml_collections

from mtl_jax.data.catalog import CELEB_A_ATTRIBUTES


def get_config(arg=None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.name = "celeb_a"
  c.seed = 0
  c.workdir = "runs/celeb_a"
  c.data = dict(name="celeb_a", data_dir=ml_collections.config_dict.placeholder(str),
                image_size=64, download=False)
  c.tasks = {name: dict(kind="binary", num_labels=1, metrics=("accuracy",))
             for name in CELEB_A_ATTRIBUTES}
  c.model = dict(arch="hard_sharing",
                 trunk=dict(kind="cnn", channels=(32, 64, 128, 256), features=512,
                            batch_norm=True, act="relu"),
                 head=dict(hidden=(), act="relu"))
  c.compare_methods = ("equal", "uncertainty", "pcgrad", "cagrad", "nash_mtl", "famo")
  c.method = dict(weighting="equal", weighting_kwargs={},
                  aggregation=ml_collections.config_dict.placeholder(str),
                  aggregation_kwargs={}, engine="auto", every=1)
  c.optimizer = dict(name="adam", learning_rate=3e-4,
                     task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="constant", warmup_steps=0, weight_decay=0.0, clip_norm=0.0)
  c.train = dict(num_steps=9500, batch_size=256, eval_batch_size=500, log_every=100,
                 eval_every=0, checkpoint_every=1000, max_to_keep=2,
                 nonfinite="skip", max_nonfinite=10)
  return c
