"""NYUv2 adapter on small files in the exact layout of the MTAN release.

The files are written as the release stores them (float64, channels last,
labels as floats with -1, depth ``[H, W, 1]``), 8 x 12 instead of 288 x 384
(the ``height`` / ``width`` options), and batches are compared with the
arrays written.
"""

import json
import os

import numpy as np
import pytest

from mtl_jax import data
from mtl_jax.data import catalog, nyuv2
from tests.data import benchmark_files

H, W = 8, 12
SIZES = {"train": 5, "val": 3}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
  """``(data_dir, written arrays)`` of a tiny NYUv2 release at ``<data_dir>/nyuv2``."""
  return benchmark_files.release_in_data_dir(
      tmp_path_factory, "nyuv2", height=H, width=W, num_classes=13, sizes=SIZES)


def _config(data_dir, **options):
  return dict(name="nyuv2", data_dir=data_dir, height=H, width=W, **options)


def _all(config, split):
  return benchmark_files.read_split(config, split, "depth")


def _expected(written, folder, indices):
  """The batch fields computed from the written files with numpy."""
  pick = lambda name: np.stack([written[folder][name][i] for i in indices])
  return {"inputs": pick("image").astype(np.float32),
          "segmentation": pick("label").astype(np.int64),
          "depth": pick("depth")[..., 0].astype(np.float32),
          "normals": pick("normal").astype(np.float32)}


def test_tasks_and_input_shape_defaults_are_the_release():
  config = dict(name="nyuv2")
  assert data.input_shape(config) == (288, 384, 3)
  assert data.dataset_tasks(config) == {
      "segmentation": dict(kind="segmentation", num_classes=13, ignore_label=-1,
                           shape=(288, 384)),
      "depth": dict(kind="depth", shape=(288, 384)),
      "normals": dict(kind="normals", shape=(288, 384))}
  assert (nyuv2.NUM_TRAIN, nyuv2.NUM_TEST) == (795, 654)


@pytest.mark.parametrize("split,folder", [("train", "train"), ("test", "val"),
                                          ("validation", "val")])
def test_batches_hold_the_files(release, split, folder):
  data_dir, written = release
  config = _config(data_dir)
  assert data.num_examples(config, split) == SIZES[folder]
  inputs, targets = _all(config, split)
  expected = _expected(written, folder, range(SIZES[folder]))
  assert inputs.dtype == np.float32 and inputs.shape == (SIZES[folder], H, W, 3)
  np.testing.assert_array_equal(inputs, expected["inputs"])
  assert targets["segmentation"].dtype == np.int32
  for task in ("segmentation", "depth", "normals"):
    np.testing.assert_array_equal(targets[task], expected[task])
  assert (targets["segmentation"] == -1).any()                 # ignore label kept
  assert (targets["depth"] == 0).any()                         # missing depth kept
  assert (np.abs(targets["normals"]).sum(-1) == 0).any()       # missing normals kept


def test_first_training_batch_keys_shapes_and_masks(release):
  data_dir, _ = release
  batch = next(data.build(_config(data_dir), "train", batch_size=4, seed=0,
                          shuffle=True, drop_remainder=True))
  assert batch["inputs"].shape == (4, H, W, 3)
  assert {k: v.shape for k, v in batch["targets"].items()} == {
      "segmentation": (4, H, W), "depth": (4, H, W), "normals": (4, H, W, 3)}
  assert all(m.tolist() == [True] * 4 for m in batch["mask"].values())


def test_validation_fraction_carves_train(release):
  data_dir, written = release
  config = _config(data_dir, validation_fraction=0.4, seed=3)
  parts = catalog.carve(SIZES["train"], 3, 0.4)
  for split in ("train", "validation"):
    inputs, targets = _all(config, split)
    expected = _expected(written, "train", parts[split])
    np.testing.assert_array_equal(inputs, expected["inputs"])
    np.testing.assert_array_equal(targets["depth"], expected["depth"])
  assert data.num_examples(config, "validation") == 2
  assert data.num_examples(config, "test") == SIZES["val"]


def test_split_file_in_libmtl_format(release, tmp_path):
  data_dir, written = release
  path = tmp_path / "data_split.json"
  path.write_text(json.dumps({"train": [4, 0, 2], "val": [3, 1]}))
  config = _config(data_dir, split_file=str(path))
  for split, indices in (("train", [4, 0, 2]), ("validation", [3, 1])):
    inputs, targets = _all(config, split)
    expected = _expected(written, "train", indices)
    np.testing.assert_array_equal(inputs, expected["inputs"])
    np.testing.assert_array_equal(targets["segmentation"], expected["segmentation"])
  path.write_text(json.dumps({"train": [0, 1], "val": [1]}))
  with pytest.raises(ValueError, match="same train/ file in both"):
    data.num_examples(config, "train")
  with pytest.raises(ValueError, match="validation_fraction or split_file, not both"):
    data.num_examples(_config(data_dir, split_file=str(path),
                              validation_fraction=0.2), "train")


def test_missing_release_names_the_path_and_layout(tmp_path):
  config = _config(str(tmp_path))
  expected = os.path.join(str(tmp_path), "nyuv2", "train", "image")
  with pytest.raises(catalog.MissingDataError) as error:
    nyuv2.NYUV2.check(data.base.resolve_options(nyuv2.NYUV2, config), str(tmp_path))
  message = str(error.value)
  assert f"{expected} is missing (and 7 more)" in message
  assert "<root>/train/{image,label,depth,normal}/<i>.npy" in message
  assert 'README.md, section "Benchmark datasets"' in message
  assert len(message.splitlines()) == 1
  with pytest.raises(catalog.MissingDataError, match="train/image is missing"):
    data.build(config, "train", batch_size=2, seed=0, shuffle=False,
               drop_remainder=True)


def test_one_missing_folder_is_named(release, tmp_path):
  _, written = release
  root = tmp_path / "nyuv2"
  benchmark_files.write_mtan_release(str(root), height=H, width=W, num_classes=13,
                                     sizes={"train": 2, "val": 1})
  os.rename(root / "val" / "normal", root / "val" / "normals")
  with pytest.raises(catalog.MissingDataError,
                     match=r"val/normal is missing\. Expected layout"):
    data.num_examples(dict(name="nyuv2", path=str(root), height=H, width=W), "test")


def test_path_option_and_a_gap_in_the_numbering(tmp_path):
  root = tmp_path / "elsewhere"
  benchmark_files.write_mtan_release(str(root), height=H, width=W, num_classes=13,
                                     sizes={"train": 3, "val": 1})
  config = dict(name="nyuv2", path=str(root), height=H, width=W)
  assert data.num_examples(config, "train") == 3
  for name in ("image", "label", "depth", "normal"):
    os.remove(root / "train" / name / "1.npy")
  with pytest.raises(ValueError, match=r"1\.npy is missing; the files must be numbered"):
    data.num_examples(config, "train")


def test_files_of_another_size_are_refused_naming_the_file(release):
  data_dir, _ = release
  with pytest.raises(ValueError, match=r"train/image/0\.npy: shape \(8, 12, 3\), "
                                       r"expected \(288, 384, 3\)"):
    data.build(dict(name="nyuv2", data_dir=data_dir), "train", batch_size=2,
               seed=0, shuffle=False, drop_remainder=True)


def test_non_integer_labels_are_refused(tmp_path):
  root = tmp_path / "nyuv2"
  benchmark_files.write_mtan_release(str(root), height=H, width=W, num_classes=13,
                                     sizes={"train": 1, "val": 1})
  np.save(root / "train" / "label" / "0.npy", np.full((H, W), 2.5))
  records = nyuv2.NYUV2.load(dict(nyuv2.DEFAULTS, height=H, width=W), "train",
                             str(tmp_path))
  with pytest.raises(ValueError, match=r"label/0\.npy: labels must be integers"):
    records[0]
