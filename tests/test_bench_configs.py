"""Every config in configs/bench/ builds and trains 2 steps on generated files.

The benchmark configs need the published datasets (absent here), so each
runs on small files written in the release's exact layout
(:mod:`tests.data.benchmark_files`), with the network shrunk to test size:
the published widths are checked by the architecture tests (MTAN-SegNet's
parameter count, ResNet-50's) and timed by ``benchmarks/dense_step.py``.
CelebA's config is checked on TFDS mock data by tests/data/test_catalog_configs.py;
here it is only parsed. ``cityscapes_deeplab`` and ``office_home`` have the
networks of ``nyuv2_deeplab`` and ``office_31`` (which train here) and
adapters tested in tests/data: to keep the suite short they are built, not
trained.
"""

import os

import jax
import pytest

from mtl_jax import config_files, settings
from mtl_jax.data import office
from mtl_jax.train import loop
from tests.data import benchmark_files

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "configs", "bench")
NAMES = sorted(f[:-3] for f in os.listdir(BENCH_DIR) if f.endswith(".py"))
H, W = 16, 24  # divisible by SegNet's 2^2 and by the dilated ResNet's stride 8
SEGNET = dict(kind="segnet", channels=(4, 8), layers=(1, 1))
RESNET = dict(kind="dilated_resnet", depth=18, width=4, output_stride=8)


def _load(name):
  return config_files.load(os.path.join(BENCH_DIR, f"{name}.py"))


def _shrink(c, name, data_dir):
  c.data.data_dir = data_dir
  if name.startswith(("nyuv2", "cityscapes")):
    c.data.update(dict(height=H, width=W))
    c.model.trunk = SEGNET if "segnet" in name else RESNET
    if "deeplab" in name:
      c.model.head.update(dict(aspp_width=4, aspp_rates=(1, 2, 3)))
  else:  # office
    c.data.image_size = 16
    c.model.trunk.update(dict(width=4, blocks=(1, 1)))
    c.model.head.hidden = (8,)
  c.train.update(dict(num_steps=2, batch_size=len(c.tasks) * 2 if name.startswith("office")
                      else 2, eval_batch_size=4, checkpoint_every=0, log_every=1,
                      eval_every=0, log_cosine=False))


def _write_data(name, root):
  if name.startswith("nyuv2"):
    benchmark_files.write_mtan_release(os.path.join(root, "nyuv2"), height=H, width=W,
                                       num_classes=13, sizes={"train": 4, "val": 2})
  elif name.startswith("cityscapes"):
    benchmark_files.write_mtan_release(os.path.join(root, "cityscapes"), height=H,
                                       width=W, num_classes=7, normals=False,
                                       sizes={"train": 4, "val": 2})
  else:
    classes = [f"c{k:02d}" for k in range(office.NUM_CLASSES[name])]
    benchmark_files.write_office(os.path.join(root, name),
                                 {d: classes for d in office.DOMAINS[name]},
                                 per_class=1, size=(12, 12))


def test_every_benchmark_names_its_published_protocol():
  assert NAMES
  for name in NAMES:
    s = settings.parse(_load(name))
    assert s.benchmark is not None, name


BUILT_ONLY = ("celeb_a", "cityscapes_deeplab", "office_home")


@pytest.mark.parametrize("name", [n for n in BUILT_ONLY if n != "celeb_a"])
def test_bench_config_builds_on_generated_files(name, tmp_path):
  root = str(tmp_path / "data")
  _write_data(name, root)
  c = _load(name)
  _shrink(c, name, root)
  s = loop.setup(c)
  assert [t.name for t in s.tasks] == sorted(c.tasks)
  assert jax.tree.leaves(s.partition.tasks)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in BUILT_ONLY])
def test_bench_config_trains_two_steps_on_generated_files(name, tmp_path):
  root = str(tmp_path / "data")
  _write_data(name, root)
  c = _load(name)
  _shrink(c, name, root)
  result = loop.train(c, workdir=str(tmp_path / "run"), progress=False)
  assert int(result.state.step) == 2
  assert set(result.evaluation["test"]) == set(c.tasks)
