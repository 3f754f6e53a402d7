"""Office-31 and Office-Home: image classification, one task per domain.

The multi-input benchmarks of LibMTL (and of DB-MTL, Nash-MTL's follow-ups):
each domain is a task with its own images and its own classifier head over a
shared encoder.

* ``office_31`` (Saenko et al. 2010): domains ``amazon``, ``dslr``,
  ``webcam``; 31 classes; 4110 images.
* ``office_home`` (Venkateswara et al. 2017): domains ``Art``, ``Clipart``,
  ``Product``, ``Real_World``; 65 classes; 15,588 images.

Files: the image folders as released, ``<root>/<domain>/<class>/<image>``
(Office-Home) or ``<root>/<domain>/images/<class>/<image>`` (Office-31; both
layouts are accepted for both). ``<root>`` is ``config.data.path``, else
``<data_dir>/office_31`` or ``<data_dir>/office_home``.

Splits: LibMTL splits each domain 60 / 20 / 20 into train / val / test with
list files ``<domain>_train.txt``, ``<domain>_val.txt``, ``<domain>_test.txt``
(in LibMTL's ``examples/office/data_txt/<office-31|office-home>/``; lines
``<path relative to <root>> <label>``). Copy them into ``<root>`` (or set the
option ``lists`` to their directory) to get LibMTL's exact split and labels.
Without them, each domain's images (classes in sorted folder order, images in
sorted name order) are split by a permutation drawn from ``(seed, domain)``:
``test_fraction`` and ``validation_fraction`` of them (0.2 each) for test and
validation, the rest for train. ``validation`` reads the ``_val`` list.

Images are decoded with PIL and resized to ``image_size`` x ``image_size``
(bilinear, 224 by default as in LibMTL), uint8, scaled to [0, 1] by the
pipeline. LibMTL also normalises with the ImageNet mean and standard
deviation; we leave that to the model (an ImageNet-pretrained trunk applies
its own normalisation).

Tasks: with the option ``domain`` set, the dataset is that one domain and
its one task (named after the domain, multiclass, accuracy). This is the
multi-input mode of :mod:`mtl_jax.data.sources`: one source per domain, each
supplying its task, every training step one batch of every domain.
:func:`sources` builds that section and :func:`task_declarations` the tasks::

  from mtl_jax.data import office
  config.data = dict(name="office_31", path="/data/office31", image_size=224,
                     sources=office.sources("office_31"))
  config.tasks = office.task_declarations("office_31")
  # = sources {"amazon": {"domain": "amazon"}, "dslr": {...}, "webcam": {...}}

``train.batch_size`` is then the rows of all domains together (LibMTL's batch
size 64 per domain is ``batch_size = 64 * 3`` for Office-31). With ``domain``
unset, the dataset is all domains pooled: one task per domain, each row
labelled for its own domain's task and ``-1`` (the declared
``ignore_label``) for the others; a batch then holds domains in proportion
to their sizes.

References:
  Saenko, Kulis, Fritz, Darrell. Adapting Visual Category Models to New
  Domains. ECCV 2010.
  Venkateswara, Eusebio, Chakraborty, Panchanathan. Deep Hashing Network for
  Unsupervised Domain Adaptation. CVPR 2017.
  Lin, Zhang. LibMTL: A Python Library for Multi-Task Learning. JMLR 2023
  (``examples/office``).
"""

from __future__ import annotations

import os
import zlib
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from mtl_jax.data import catalog, files
from mtl_jax.validators import at_least

DOMAINS = {"office_31": ("amazon", "dslr", "webcam"),
           "office_home": ("Art", "Clipart", "Product", "Real_World")}
NUM_CLASSES = {"office_31": 31, "office_home": 65}
LIST_SPLITS = {"train": "train", "validation": "val", "test": "test"}
IGNORE = -1
_MIN_IMAGE_SIZE = 8

DEFAULTS = {"path": None, "domain": None, "image_size": 224, "lists": None,
            "validation_fraction": 0.2, "test_fraction": 0.2, "seed": 0}


def _domains(dataset: str, options: Mapping[str, Any]) -> tuple[str, ...]:
  domain = options["domain"]
  if domain is None:
    return DOMAINS[dataset]
  if domain not in DOMAINS[dataset]:
    raise ValueError(f"Dataset {dataset!r}: domain must be one of "
                     f"{list(DOMAINS[dataset])}, got {domain!r}.")
  return (domain,)


def _declaration(dataset: str, pooled: bool) -> dict:
  decl = catalog.multiclass(NUM_CLASSES[dataset])
  if pooled:
    decl["ignore_label"] = IGNORE
  return decl


def task_declarations(dataset: str,
                      domains: Optional[Sequence[str]] = None) -> dict[str, dict]:
  """``config.tasks`` of a multi-input config: one multiclass task per domain."""
  return {d: dict(kind="multiclass", num_classes=NUM_CLASSES[dataset],
                  metrics=("accuracy",))
          for d in _checked_domains(dataset, domains)}


def sources(dataset: str, domains: Optional[Sequence[str]] = None,
            **per_source: Any) -> dict[str, dict]:
  """``config.data.sources``: one source per domain (named after it).

  Args:
    dataset: ``office_31`` or ``office_home``.
    domains: the domains to use (default all).
    **per_source: keys added to every source (e.g. ``batch_size``).
  """
  return {d: dict(domain=d, **per_source) for d in _checked_domains(dataset, domains)}


def _checked_domains(dataset: str, domains: Optional[Sequence[str]]) -> tuple[str, ...]:
  if dataset not in DOMAINS:
    raise ValueError(f"Unknown Office dataset {dataset!r}; one of {sorted(DOMAINS)}.")
  chosen = tuple(domains or DOMAINS[dataset])
  unknown = [d for d in chosen if d not in DOMAINS[dataset]]
  if unknown:
    raise ValueError(f"Dataset {dataset!r} has no domain(s) {unknown}; its domains "
                     f"are {list(DOMAINS[dataset])}.")
  return chosen


def _layout(dataset: str) -> str:
  domains = ",".join(DOMAINS[dataset])
  return (f"<root>/{{{domains}}}/<class>/<image> (or <root>/<domain>/images/"
          "<class>/<image>), optionally with LibMTL's list files "
          "<domain>_{train,val,test}.txt in <root> or in the option 'lists'")


def _lists_dir(root: str, options: Mapping[str, Any]) -> str:
  lists = options["lists"]
  return os.path.abspath(os.path.expanduser(str(lists))) if lists else root


def _list_file(lists_dir: str, domain: str, split: str) -> str:
  return os.path.join(lists_dir, f"{domain}_{LIST_SPLITS[split]}.txt")


def _uses_lists(lists_dir: str, domain: str) -> bool:
  return any(os.path.exists(_list_file(lists_dir, domain, s)) for s in LIST_SPLITS)


def _domain_dir(root: str, domain: str) -> str:
  images = os.path.join(root, domain, "images")
  return images if os.path.isdir(images) else os.path.join(root, domain)


def check(dataset: str, options: Mapping[str, Any], data_dir: str) -> None:
  """Raises ``MissingDataError`` naming a missing domain folder or list file."""
  root = files.dataset_root(dataset, options, data_dir)
  lists_dir = _lists_dir(root, options)
  needed = [root]
  for domain in _domains(dataset, options):
    if _uses_lists(lists_dir, domain):
      needed += [_list_file(lists_dir, domain, s) for s in LIST_SPLITS]
    else:
      needed.append(os.path.join(root, domain))
  files.require(dataset, needed, _layout(dataset), root)


def _from_lists(dataset: str, root: str, lists_dir: str, domain: str,
                split: str) -> tuple[list[str], list[int]]:
  path = _list_file(lists_dir, domain, split)
  pairs = files.read_list(path)
  n = NUM_CLASSES[dataset]
  bad = [label for _, label in pairs if not 0 <= label < n]
  if bad:
    raise ValueError(f"{path}: label {bad[0]} is out of range [0, {n - 1}].")
  return [os.path.join(root, p) for p, _ in pairs], [label for _, label in pairs]


def _from_folders(dataset: str, root: str, domain: str, split: str,
                  options: Mapping[str, Any]) -> tuple[list[str], list[int]]:
  folder = _domain_dir(root, domain)
  classes = sorted(c for c in os.listdir(folder)
                   if os.path.isdir(os.path.join(folder, c)))
  if len(classes) != NUM_CLASSES[dataset]:
    raise ValueError(f"Dataset {dataset!r}: {folder} has {len(classes)} class "
                     f"folders, expected {NUM_CLASSES[dataset]}.")
  paths, labels = [], []
  for label, name in enumerate(classes):
    images = files.image_files(os.path.join(folder, name))
    paths += [os.path.join(folder, name, f) for f in images]
    labels += [label] * len(images)
  rng = np.random.default_rng([int(options["seed"]), zlib.crc32(domain.encode())])
  order = rng.permutation(len(paths))
  num_test = int(round(len(paths) * options["test_fraction"]))
  num_validation = int(round(len(paths) * options["validation_fraction"]))
  parts = {"test": order[:num_test],
           "validation": order[num_test:num_test + num_validation],
           "train": order[num_test + num_validation:]}
  chosen = np.sort(parts[split])
  return [paths[i] for i in chosen], [labels[i] for i in chosen]


class ImageRecords:
  """Records ``{"image": uint8 [s, s, 3], <task>: label, ...}`` decoded on read.

  Args:
    paths: image files.
    labels: ``{task: int array [n]}`` (``-1`` where a row has no label).
    size: the image size ``s``.
  """

  def __init__(self, paths: Sequence[str], labels: Mapping[str, np.ndarray],
               size: int):
    self.paths = list(paths)
    self.labels = {k: np.asarray(v, np.int64) for k, v in labels.items()}
    self.size = int(size)

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> dict[str, Any]:
    record = {"image": files.read_image(self.paths[index], self.size)}
    record.update({task: v[index] for task, v in self.labels.items()})
    return record


def load(dataset: str, options: Mapping[str, Any], split: str,
         data_dir: str) -> ImageRecords:
  """The records of ``split`` of the chosen domain (or all, pooled)."""
  at_least(options["image_size"], f"{dataset}: image_size", _MIN_IMAGE_SIZE)
  catalog.check_fractions(dataset, options, ("validation_fraction", "test_fraction"))
  check(dataset, options, data_dir)
  root = files.dataset_root(dataset, options, data_dir)
  lists_dir = _lists_dir(root, options)
  domains = _domains(dataset, options)
  paths, labels = [], {d: [] for d in domains}
  for domain in domains:
    if _uses_lists(lists_dir, domain):
      found, found_labels = _from_lists(dataset, root, lists_dir, domain, split)
    else:
      found, found_labels = _from_folders(dataset, root, domain, split, options)
    paths += found
    for task in domains:
      labels[task] += found_labels if task == domain else [IGNORE] * len(found)
  if not paths:
    raise files.MissingDataError(
        f"Dataset {dataset!r}: no image of split {split!r} under {root} "
        f"(domains {list(domains)}). Expected layout: {_layout(dataset)}; see "
        f"{files.README_SECTION}.")
  return ImageRecords(paths, labels, options["image_size"])


def _spec(dataset: str) -> files.FileDatasetSpec:
  def tasks(options):
    pooled = options["domain"] is None
    return {d: _declaration(dataset, pooled) for d in _domains(dataset, options)}

  return files.FileDatasetSpec(
      name=dataset, defaults=DEFAULTS, tasks=tasks,
      input_shape=lambda o: (int(o["image_size"]), int(o["image_size"]), 3),
      load=lambda o, split, d: load(dataset, o, split, d),
      check=lambda o, d: check(dataset, o, d))


OFFICE_31 = _spec("office_31")
OFFICE_HOME = _spec("office_home")
