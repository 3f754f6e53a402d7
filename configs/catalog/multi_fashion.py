"""MultiFashion: the MultiMNIST recipe on Fashion-MNIST (left and right garment).

Needs TFDS ``fashion_mnist`` prepared under ``data.data_dir`` (see the README,
"Catalog datasets"), or ``--config.data.download=True`` with network. The
model and methods of ``configs/catalog/multi_mnist.py``: a LeNet-style trunk
shared by two linear heads (Sener & Koltun 2018); equal loss weights;
``mtl-jax compare`` adds MGDA, PCGrad, CAGrad and Nash-MTL.
"""

from mtl_jax.config_files import sibling


def get_config(arg=None):
  c = sibling(__file__, "multi_mnist", arg)
  c.name = "multi_fashion"
  c.workdir = "runs/multi_fashion"
  c.data.name = "multi_fashion"
  return c
