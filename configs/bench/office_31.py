"""Office-31: one classification task per domain, Protocol B (LibMTL).

Saenko et al., ECCV 2010; LibMTL's ``examples/office`` (Lin & Zhang, JMLR
2023), the setting of the DB-MTL paper's table: the domains ``amazon``,
``dslr`` and ``webcam`` are three 31-class tasks, each with its own images
(multi-input mode: every step one batch of 64 from each domain), a ResNet-18
encoder shared by per-task heads; Adam 1e-4 with weight decay 1e-5 (L2, as
PyTorch's Adam), constant rate, 100 epochs, the best validation epoch;
statistic Delta_p over the per-domain test accuracies.

Needs the image folders under ``data.path`` or ``<data_dir>/office_31``
(README, "Benchmark datasets"; LibMTL's split lists for its exact split).

Departures: LibMTL's ResNet-18 is ImageNet-pretrained and followed by a
shared 512-unit layer with batch norm and dropout 0.5; here the ResNet-18
starts from random weights (nothing downloads) and each task's head has its
own 512-unit hidden layer. Epochs are counted on the largest domain (amazon,
about 1690 training images: 26 steps of 64).
"""

import ml_collections

from mtl_jax.data import office

DATASET = "office_31"
PER_DOMAIN = 64
STEPS_PER_EPOCH = 26
EPOCHS = 100


def get_config(arg=None) -> ml_collections.ConfigDict:
  del arg
  domains = office.DOMAINS[DATASET]
  c = ml_collections.ConfigDict()
  c.name = DATASET
  c.seed = 0
  c.workdir = f"runs/{DATASET}"
  c.benchmark = dict(name=DATASET, protocol="B")
  c.data = dict(name=DATASET, data_dir=ml_collections.config_dict.placeholder(str),
                path=ml_collections.config_dict.placeholder(str), image_size=224,
                sources=office.sources(DATASET))
  c.tasks = office.task_declarations(DATASET)
  c.model = dict(arch="hard_sharing",
                 trunk=dict(kind="resnet", blocks=(2, 2, 2, 2), width=64, stem="imagenet"),
                 head=dict(hidden=(512,), act="relu"))
  c.compare_methods = ("equal", "nash_mtl", "db_mtl")
  c.method = dict(weighting="equal", weighting_kwargs={},
                  aggregation=ml_collections.config_dict.placeholder(str),
                  aggregation_kwargs={}, engine="auto", every=1)
  c.optimizer = dict(name="adam_l2", learning_rate=1e-4, weight_decay=1e-5,
                     task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="constant", clip_norm=0.0)
  c.train = dict(num_steps=STEPS_PER_EPOCH * EPOCHS, batch_size=PER_DOMAIN * len(domains),
                 eval_batch_size=128, log_every=STEPS_PER_EPOCH,
                 eval_every=STEPS_PER_EPOCH, checkpoint_every=STEPS_PER_EPOCH * 10,
                 max_to_keep=2, nonfinite="skip", max_nonfinite=10)
  return c
