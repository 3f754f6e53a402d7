"""Office-Home: one 65-class task per domain, Protocol B (LibMTL).

Venkateswara et al., CVPR 2017; as ``office_31.py`` (same network, optimizer
and departures) with the domains ``Art``, ``Clipart``, ``Product`` and
``Real_World``: every step one batch of 64 from each; epochs counted on the
largest domain (Real_World, about 2610 training images: 41 steps of 64).
"""

from mtl_jax.config_files import sibling
from mtl_jax.data import office

DATASET = "office_home"
STEPS_PER_EPOCH = 41
EPOCHS = 100


def get_config(arg=None):
  del arg
  c = sibling(__file__, "office_31")
  c.name = DATASET
  c.workdir = f"runs/{DATASET}"
  c.benchmark = dict(name=DATASET, protocol="B")
  c.data.name = DATASET
  c.data.sources = office.sources(DATASET)
  c.tasks = office.task_declarations(DATASET)
  c.compare_methods = ("equal", "db_mtl")
  c.train.update(dict(num_steps=STEPS_PER_EPOCH * EPOCHS, batch_size=64 * 4,
                      log_every=STEPS_PER_EPOCH, eval_every=STEPS_PER_EPOCH,
                      checkpoint_every=STEPS_PER_EPOCH * 10))
  return c
