"""Cityscapes adapter on small files in the exact layout of the MTAN release.

8 x 12 files instead of 128 x 256 (the ``height`` / ``width`` options);
``label_7/`` (MTAN's release) or ``label/`` (LibMTL's copy), and
``label_19/`` with ``num_classes=19``.
"""

import os

import numpy as np
import pytest

from mtl_jax import data
from mtl_jax.data import catalog, cityscapes
from tests.data import benchmark_files

H, W = 8, 12
SIZES = {"train": 4, "val": 3}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
  """``(data_dir, written arrays)`` with ``label_7/`` and ``label_19/``."""
  return benchmark_files.release_in_data_dir(
      tmp_path_factory, "cityscapes", height=H, width=W, num_classes=7, sizes=SIZES,
      normals=False, label_folder="label_7", extra_labels={"label_19": 19})


def _config(data_dir, **options):
  return dict(name="cityscapes", data_dir=data_dir, height=H, width=W, **options)


def _all(config, split):
  return benchmark_files.read_split(config, split, "depth")


def test_defaults_are_the_release():
  assert data.input_shape(dict(name="cityscapes")) == (128, 256, 3)
  assert data.dataset_tasks(dict(name="cityscapes")) == {
      "segmentation": dict(kind="segmentation", num_classes=7, ignore_label=-1,
                           shape=(128, 256)),
      "depth": dict(kind="depth", shape=(128, 256))}
  assert (cityscapes.NUM_TRAIN, cityscapes.NUM_TEST) == (2975, 500)


@pytest.mark.parametrize("num_classes,folder", [(7, "label_7"), (19, "label_19")])
@pytest.mark.parametrize("split,split_folder", [("train", "train"), ("test", "val")])
def test_batches_hold_the_files(release, num_classes, folder, split, split_folder):
  data_dir, written = release
  config = _config(data_dir, num_classes=num_classes)
  assert data.dataset_tasks(config)["segmentation"]["num_classes"] == num_classes
  inputs, targets = _all(config, split)
  files = written[split_folder]
  np.testing.assert_array_equal(inputs, np.stack(files["image"]).astype(np.float32))
  np.testing.assert_array_equal(targets["segmentation"],
                                np.stack(files[folder]).astype(np.int64))
  np.testing.assert_array_equal(targets["depth"],
                                np.stack(files["depth"])[..., 0].astype(np.float32))
  assert sorted(targets) == ["depth", "segmentation"]


def test_libmtl_label_folder_is_read_when_there_is_no_label_7(tmp_path):
  written = benchmark_files.write_mtan_release(
      str(tmp_path / "cityscapes"), height=H, width=W, num_classes=7,
      sizes={"train": 2, "val": 2}, normals=False, label_folder="label")
  _, targets = _all(_config(str(tmp_path)), "validation")
  np.testing.assert_array_equal(targets["segmentation"],
                                np.stack(written["val"]["label"]).astype(np.int64))


def test_missing_release_names_the_path(tmp_path):
  config = _config(str(tmp_path))
  with pytest.raises(catalog.MissingDataError) as error:
    cityscapes.CITYSCAPES.check(data.base.resolve_options(cityscapes.CITYSCAPES, config),
                                str(tmp_path))
  message = str(error.value)
  assert os.path.join(str(tmp_path), "cityscapes", "train", "image") in message
  assert "<root>/train/{image,label_7,depth}/<i>.npy" in message
  assert len(message.splitlines()) == 1


def test_missing_label_19_is_named(tmp_path):
  benchmark_files.write_mtan_release(
      str(tmp_path / "cityscapes"), height=H, width=W, num_classes=7,
      sizes={"train": 1, "val": 1}, normals=False, label_folder="label_7")
  with pytest.raises(catalog.MissingDataError, match=r"train/label_19 is missing"):
    data.num_examples(_config(str(tmp_path), num_classes=19), "train")
  with pytest.raises(ValueError, match=r"num_classes must be one of \[7, 19\], got 13"):
    data.dataset_tasks(_config(str(tmp_path), num_classes=13))


def test_labels_out_of_range_are_refused(tmp_path):
  root = tmp_path / "cityscapes"
  benchmark_files.write_mtan_release(str(root), height=H, width=W, num_classes=7,
                                     sizes={"train": 2, "val": 1}, normals=False,
                                     label_folder="label_7")
  np.save(root / "train" / "label_7" / "1.npy", np.full((H, W), 7.0))
  with pytest.raises(ValueError, match=r"label 7 is out of range \[0, 6\]"):
    next(data.build(_config(str(tmp_path)), "train", batch_size=2, seed=0,
                    shuffle=False, drop_remainder=True))
