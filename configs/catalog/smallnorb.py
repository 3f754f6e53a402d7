"""smallNORB (LeCun et al. 2004): category, instance, elevation, azimuth, lighting.

Needs TFDS ``smallnorb`` prepared under ``data.data_dir`` (see the README,
"Catalog datasets"). The official train and test splits hold disjoint object
instances, so by default both are pooled and split by seed (70/10/20) and all
five tasks are learnable; ``get_config("official")``
(``--config configs/catalog/smallnorb.py:official``) keeps the official test
split and leaves ``instance`` out of the data and the tasks. Left-camera
images resized from 96x96 to 64x64; a 4-block CNN with batch normalisation
shared by linear heads; equal loss weights.
"""

import ml_collections

CLASSES = {"category": 5, "instance": 10, "elevation": 9, "azimuth": 18, "lighting": 6}


def get_config(arg: str = "pooled") -> ml_collections.ConfigDict:
  if arg not in ("pooled", "official"):
    raise ValueError(f"configs/catalog/smallnorb.py: unknown arg {arg!r}; use "
                     "'pooled' or 'official'.")
  official = arg == "official"
  c = ml_collections.ConfigDict()
  c.name = "smallnorb"
  c.seed = 0
  c.workdir = f"runs/smallnorb_{arg}"
  c.data = dict(name="smallnorb", data_dir=ml_collections.config_dict.placeholder(str),
                image_size=64, official_split=official, validation_fraction=0.1,
                test_fraction=0.2, seed=0, download=False)
  c.tasks = {name: dict(kind="multiclass", num_classes=n, metrics=("accuracy",))
             for name, n in CLASSES.items() if not (official and name == "instance")}
  c.model = dict(arch="hard_sharing",
                 trunk=dict(kind="cnn", channels=(32, 64, 64, 128), features=256,
                            batch_norm=True, act="relu"),
                 head=dict(hidden=(), act="relu"))
  c.compare_methods = ("equal", "uncertainty", "pcgrad", "cagrad")
  c.method = dict(weighting="equal", weighting_kwargs={},
                  aggregation=ml_collections.config_dict.placeholder(str),
                  aggregation_kwargs={}, engine="auto", every=1)
  c.optimizer = dict(name="adam", learning_rate=1e-3,
                     task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="cosine", warmup_steps=0, weight_decay=0.0, clip_norm=0.0)
  c.train = dict(num_steps=6000, batch_size=128, eval_batch_size=500, log_every=100,
                 eval_every=0, checkpoint_every=2000, max_to_keep=2,
                 nonfinite="skip", max_nonfinite=10)
  return c
