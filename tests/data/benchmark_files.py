"""Small benchmark datasets written in the exact on-disk layout of the releases.

``write_mtan_release`` writes the preprocessed ``.npy`` layout of the MTAN
code (NYUv2, Cityscapes); ``write_office`` writes Office image folders (and,
optionally, LibMTL's list files). Each returns the arrays / labels it wrote,
so tests compare batches with them.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from mtl_jax import data


def _save(path: str, array: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  np.save(path, array)


def release_in_data_dir(tmp_path_factory, dataset: str, **kwargs) -> tuple[str, dict]:
  """``(data_dir, written)``: :func:`write_mtan_release` at ``<data_dir>/<dataset>``
  of a new temporary ``data_dir``."""
  root = tmp_path_factory.mktemp(f"{dataset}_data")
  return str(root), write_mtan_release(str(root / dataset), **kwargs)


def mtan_example(rng: np.random.Generator, height: int, width: int,
                 num_classes: int, normals: bool) -> dict[str, np.ndarray]:
  """One example as the release stores it: float64 arrays, channels last,
  labels -1 (no label) .. num_classes - 1 as floats, depth [H, W, 1] with
  zeros (missing), unit normals [H, W, 3] with zero vectors (missing)."""
  image = rng.uniform(0, 1, (height, width, 3))
  label = rng.integers(-1, num_classes, (height, width)).astype(np.float64)
  depth = rng.uniform(0.5, 10, (height, width, 1)) * (rng.uniform(size=(height, width, 1)) > 0.2)
  out = {"image": image, "label": label, "depth": depth}
  if normals:
    n = rng.normal(size=(height, width, 3))
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[rng.uniform(size=(height, width)) < 0.2] = 0.0
    out["normal"] = n
  return out


def write_mtan_release(root: str, *, height: int, width: int, num_classes: int,
                       sizes: Optional[dict] = None, normals: bool = True,
                       label_folder: str = "label", seed: int = 0,
                       extra_labels: Optional[dict] = None) -> dict:
  """Writes ``<root>/{train,val}/{image,<label_folder>,depth[,normal]}/<i>.npy``.

  Args:
    sizes: ``{"train": n, "val": m}`` (default 5 and 3).
    extra_labels: ``{folder: num_classes}`` of further label folders (e.g.
      Cityscapes' ``label_19``).

  Returns:
    ``{folder split: {release folder: [arrays]}}``.
  """
  rng = np.random.default_rng(seed)
  written = {}
  for split, n in (sizes or {"train": 5, "val": 3}).items():
    written[split] = {}
    for i in range(n):
      example = mtan_example(rng, height, width, num_classes, normals)
      example[label_folder] = example.pop("label")
      for folder, classes in (extra_labels or {}).items():
        example[folder] = rng.integers(-1, classes, (height, width)).astype(np.float64)
      for folder, array in example.items():
        _save(os.path.join(root, split, folder, f"{i}.npy"), array)
        written[split].setdefault(folder, []).append(array)
  return written


def write_office(root: str, domains: dict[str, Sequence[str]], *,
                 per_class: int = 5, size: tuple[int, int] = (10, 14),
                 images_subfolder: bool = False, seed: int = 0) -> dict:
  """Writes ``<root>/<domain>[/images]/<class>/<k>.png`` (RGB PNGs, lossless).

  Returns:
    ``{domain: [(path relative to root, class index in sorted order,
    pixels uint8 [h, w, 3])]}``.
  """
  from PIL import Image  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  written = {}
  for domain, classes in domains.items():
    written[domain] = []
    for label, name in enumerate(sorted(classes)):
      for k in range(per_class):
        parts = [domain] + (["images"] if images_subfolder else []) + [name, f"{k:04d}.png"]
        rel = os.path.join(*parts)
        pixels = rng.integers(0, 256, size + (3,), dtype=np.uint8)
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        Image.fromarray(pixels).save(os.path.join(root, rel))
        written[domain].append((rel, label, pixels))
  return written


def write_lists(folder: str, domain: str, parts: dict[str, list[tuple[str, int]]]) -> None:
  """LibMTL's list files ``<domain>_{train,val,test}.txt``: ``<path> <label>``."""
  os.makedirs(folder, exist_ok=True)
  for split, pairs in parts.items():
    with open(os.path.join(folder, f"{domain}_{split}.txt"), "w") as f:
      f.writelines(f"{path} {label}\n" for path, label in pairs)


def read_split(config, split: str, task: str, batch_size: int = 2):
  """Every real row of ``split`` in order, through ``data.build``:
  ``(inputs, {task: targets})``, padding rows dropped by ``task``'s mask."""
  batches = list(data.build(config, split, batch_size=batch_size, seed=0,
                            shuffle=False, drop_remainder=False, num_epochs=1))
  keep = np.concatenate([b["mask"][task] for b in batches])
  inputs = np.concatenate([b["inputs"] for b in batches])[keep]
  targets = {t: np.concatenate([b["targets"][t] for b in batches])[keep]
             for t in batches[0]["targets"]}
  return inputs, targets
