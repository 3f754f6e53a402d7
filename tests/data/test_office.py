"""Office-31 / Office-Home adapters on small image folders in the real layout.

Images are 8 x 8 PNGs (lossless) read with ``image_size=8``, so batches equal
the written pixels exactly; one test resizes. Classes have their real counts
(31 and 65) with one or two images each.
"""

import os
import zlib

import numpy as np
import pytest

from mtl_jax import data
from mtl_jax.data import catalog, office
from tests.data import benchmark_files

SIZE = 8
CLASSES_31 = [f"class_{k:02d}" for k in range(31)]


@pytest.fixture(scope="module")
def office31(tmp_path_factory):
  """``(data_dir, written)``: Office-31 as released (``<domain>/images/<class>``),
  two images per class."""
  root = tmp_path_factory.mktemp("office_data")
  written = benchmark_files.write_office(
      str(root / "office_31"), {d: CLASSES_31 for d in office.DOMAINS["office_31"]},
      per_class=2, size=(SIZE, SIZE), images_subfolder=True)
  return str(root), written


def _config(data_dir, **options):
  return dict(name="office_31", data_dir=data_dir, image_size=SIZE, **options)


def _all(config, split, task):
  inputs, targets = benchmark_files.read_split(config, split, task, batch_size=8)
  return inputs, targets[task]


def _expected_split(written, domain, split, seed=0, fractions=(0.2, 0.2)):
  """The images and labels of a split, drawn in the test with numpy."""
  items = sorted(written[domain], key=lambda item: item[0])  # class, then file
  rng = np.random.default_rng([seed, zlib.crc32(domain.encode())])
  order = rng.permutation(len(items))
  num_test = int(round(len(items) * fractions[1]))
  num_validation = int(round(len(items) * fractions[0]))
  parts = {"test": order[:num_test],
           "validation": order[num_test:num_test + num_validation],
           "train": order[num_test + num_validation:]}
  chosen = [items[i] for i in np.sort(parts[split])]
  return (np.stack([p for _, _, p in chosen]).astype(np.float32) / 255,
          np.asarray([label for _, label, _ in chosen]))


def test_declarations_and_sources_helpers():
  assert office.task_declarations("office_home") == {
      d: dict(kind="multiclass", num_classes=65, metrics=("accuracy",))
      for d in ("Art", "Clipart", "Product", "Real_World")}
  assert office.sources("office_31", ["dslr", "amazon"], batch_size=4) == {
      "dslr": dict(domain="dslr", batch_size=4),
      "amazon": dict(domain="amazon", batch_size=4)}
  with pytest.raises(ValueError, match=r"has no domain\(s\) \['Art'\]"):
    office.sources("office_31", ["Art"])
  assert data.dataset_tasks(dict(name="office_31", domain="webcam")) == {
      "webcam": catalog.multiclass(31)}
  assert data.input_shape(dict(name="office_home")) == (224, 224, 3)
  with pytest.raises(ValueError, match=r"domain must be one of \['amazon'"):
    data.dataset_tasks(dict(name="office_31", domain="Art"))


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_one_domain_splits_60_20_20_by_seed(office31, split):
  data_dir, written = office31
  config = _config(data_dir, domain="dslr")
  inputs, labels = _all(config, split, "dslr")
  expected_inputs, expected_labels = _expected_split(written, "dslr", split)
  np.testing.assert_allclose(inputs, expected_inputs, rtol=0, atol=1e-7)
  np.testing.assert_array_equal(labels, expected_labels)
  assert len(labels) == {"train": 38, "validation": 12, "test": 12}[split]


def test_splits_partition_the_domain_and_depend_on_the_seed(office31):
  data_dir, _ = office31
  spec = data.get_spec("office_31")
  options = dict(office.DEFAULTS, domain="amazon", image_size=SIZE)
  paths = {s: spec.load(options, s, data_dir).paths for s in ("train", "validation", "test")}
  together = sum(paths.values(), [])
  assert len(together) == len(set(together)) == 62
  other = spec.load(dict(options, seed=1), "test", data_dir).paths
  assert other != paths["test"]


def test_multi_input_sources_one_domain_per_task(office31):
  data_dir, written = office31
  config = _config(data_dir, sources=office.sources("office_31"))
  tasks = data.dataset_tasks(config)
  assert tasks == {d: catalog.multiclass(31) for d in ("amazon", "dslr", "webcam")}
  batch = next(data.build(config, "train", batch_size=6, seed=0, shuffle=True,
                          drop_remainder=True))
  assert batch["inputs"].shape == (6, SIZE, SIZE, 3)
  # Sources in sorted order, two rows each; a task is masked off other rows.
  assert batch["mask"]["amazon"].tolist() == [True, True] + [False] * 4
  assert batch["mask"]["dslr"].tolist() == [False, False, True, True, False, False]
  assert batch["mask"]["webcam"].tolist() == [False] * 4 + [True, True]
  for task in tasks:
    assert set(batch["targets"][task][batch["mask"][task]]) <= set(range(31))
  # Evaluation reads each source's split in turn.
  _, labels = _all(config, "test", "webcam")
  np.testing.assert_array_equal(labels, _expected_split(written, "webcam", "test")[1])


def test_pooled_domains_mark_the_other_tasks_ignored(office31):
  data_dir, written = office31
  config = _config(data_dir)
  tasks = data.dataset_tasks(config)
  assert tasks["dslr"] == dict(catalog.multiclass(31), ignore_label=-1)
  batches = list(data.build(config, "test", batch_size=16, seed=0, shuffle=False,
                            drop_remainder=False, num_epochs=1))
  labels = {t: np.concatenate([b["targets"][t] for b in batches]) for t in tasks}
  real = np.concatenate([b["mask"]["dslr"] for b in batches])
  n = {d: len(_expected_split(written, d, "test")[1]) for d in tasks}
  offsets = np.cumsum([0] + [n[d] for d in ("amazon", "dslr", "webcam")])
  for k, domain in enumerate(("amazon", "dslr", "webcam")):
    own = slice(offsets[k], offsets[k + 1])
    np.testing.assert_array_equal(labels[domain][own],
                                  _expected_split(written, domain, "test")[1])
    others = np.ones(len(real), bool)
    others[own] = False
    assert (labels[domain][others & real] == -1).all()


def test_libmtl_list_files_give_split_and_labels(office31, tmp_path):
  data_dir, written = office31
  items = written["webcam"]
  # Labels in another order than the sorted class folders, as LibMTL's lists.
  relabel = lambda label: (label * 7) % 31
  parts = {"train": items[:40], "val": items[40:50], "test": items[50:]}
  lists = tmp_path / "lists"
  benchmark_files.write_lists(str(lists), "webcam",
                              {s: [(rel, relabel(label)) for rel, label, _ in v]
                               for s, v in parts.items()})
  config = _config(data_dir, domain="webcam", lists=str(lists))
  for split, key in (("train", "train"), ("validation", "val"), ("test", "test")):
    inputs, labels = _all(config, split, "webcam")
    np.testing.assert_array_equal(labels, [relabel(l) for _, l, _ in parts[key]])
    np.testing.assert_allclose(
        inputs, np.stack([p for _, _, p in parts[key]]).astype(np.float32) / 255,
        rtol=0, atol=1e-7)
  os.remove(lists / "webcam_val.txt")
  with pytest.raises(catalog.MissingDataError, match=r"lists/webcam_val\.txt is missing"):
    data.num_examples(config, "train")


def test_images_are_resized(office31):
  data_dir, _ = office31
  batch = next(data.build(dict(_config(data_dir, domain="amazon"), image_size=12),
                          "test", batch_size=2, seed=0, shuffle=False,
                          drop_remainder=True))
  assert batch["inputs"].shape == (2, 12, 12, 3)
  assert 0.0 <= batch["inputs"].min() and batch["inputs"].max() <= 1.0


def test_office_home_layout_without_images_subfolder(tmp_path):
  classes = [f"C{k}" for k in range(65)]
  written = benchmark_files.write_office(str(tmp_path / "office_home"),
                                         {"Real_World": classes}, per_class=1,
                                         size=(SIZE, SIZE))
  config = dict(name="office_home", data_dir=str(tmp_path), image_size=SIZE,
                domain="Real_World")
  assert data.num_examples(config, "train") + data.num_examples(
      config, "validation") + data.num_examples(config, "test") == 65
  _, labels = _all(config, "test", "Real_World")
  np.testing.assert_array_equal(labels, _expected_split(written, "Real_World", "test")[1])


def test_missing_data_and_wrong_class_count(tmp_path):
  with pytest.raises(catalog.MissingDataError) as error:
    office.OFFICE_31.check(dict(office.DEFAULTS, domain="dslr"), str(tmp_path))
  message = str(error.value)
  assert f"{tmp_path / 'office_31'} is missing" in message
  assert "<root>/{amazon,dslr,webcam}/<class>/<image>" in message
  assert len(message.splitlines()) == 1
  benchmark_files.write_office(str(tmp_path / "office_31"), {"dslr": CLASSES_31[:5]},
                               per_class=1, size=(SIZE, SIZE))
  with pytest.raises(catalog.MissingDataError, match=r"office_31/amazon is missing"):
    data.num_examples(dict(name="office_31", data_dir=str(tmp_path)), "train")
  with pytest.raises(ValueError, match="has 5 class folders, expected 31"):
    data.num_examples(_config(str(tmp_path), domain="dslr"), "train")
