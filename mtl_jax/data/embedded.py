"""The shared builder of the embedded datasets: splits generated as arrays.

Each embedded dataset module (``sprites``, ``multi_digits``,
``mmoe_synthetic``, ``toy``, ``pareto_mtl``) writes a function
``generate(options, split) -> {field: array [n, ...]}`` that makes a whole
split, and a :class:`Builder` subclass naming it and the TFDS features.
The regression datasets (one float32 input vector, one float32 scalar a task)
subclass :class:`RegressionBuilder` instead, which declares the features
itself, and get their :class:`~mtl_jax.data.base.DatasetSpec` from
:func:`regression_dataset`.

Example::

  class Toy(embedded.RegressionBuilder, skip_registration=True):
    name, VERSION = "toy", tfds.core.Version("1.0.0")
    INPUT, TASKS, SPLITS = "theta", ("l1", "l2"), SPLITS
    generate = staticmethod(generate)
    input_dim = staticmethod(lambda options: 2)

  DATASET = embedded.regression_dataset(Toy, DEFAULTS)
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import jax
import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data import base
from mtl_jax.validators import at_least

REGRESSION_METRICS = ("mse", "mae")


def check_split_sizes(dataset: str, options: Mapping[str, Any]) -> None:
  """Raises unless ``num_train``, ``num_validation`` and ``num_test`` are >= 1."""
  for split in base.SPLITS:
    at_least(options[f"num_{split}"], f"{dataset}: num_{split}", 1)


def split_rng(options: Mapping[str, Any], split: str) -> np.random.Generator:
  """The generator of ``split``: ``SeedSequence([seed, index of split])``."""
  return np.random.default_rng([int(options["seed"]), base.SPLITS.index(split)])


def on_cpu():
  """A context placing JAX computations on the CPU (when there is one), so
  that targets computed with JAX are the same on every machine."""
  try:
    return jax.default_device(jax.devices("cpu")[0])
  except RuntimeError:  # JAX_PLATFORMS without cpu
    return contextlib.nullcontext()


def image_feature(size: int, channels: int = 1) -> tfds.features.Tensor:
  """A uint8 ``[size, size, channels]`` image stored as raw bytes."""
  return tfds.features.Tensor(shape=(size, size, channels), dtype=np.uint8,
                              encoding=tfds.features.Encoding.BYTES)


class Builder(base.EmbeddedBuilder, skip_registration=True):
  """TFDS builder of a dataset whose splits are generated whole, as arrays.

  Subclasses set ``name``, ``VERSION`` and:

  * ``generate``: ``(options, split) -> {field: array}`` (a staticmethod);
  * ``features``: ``options -> {field: tfds feature}`` (a staticmethod);
  * ``SPLITS``: the split names (default :data:`base.SPLITS`).

  The docstring of the subclass becomes the TFDS description.
  """

  SPLITS: tuple[str, ...] = base.SPLITS

  def _info(self) -> tfds.core.DatasetInfo:
    features = self.features(self.builder_config.options)
    return tfds.core.DatasetInfo(
        builder=self, description=self.__doc__,
        features=tfds.features.FeaturesDict(features), disable_shuffling=True)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {split: self._generate_examples(split) for split in self.SPLITS}

  def _generate_examples(self, split):
    return base.examples(self.generate(self.builder_config.options, split))


class RegressionBuilder(Builder, skip_registration=True):
  """A :class:`Builder` of float32 inputs ``[d]`` and scalar float32 targets.

  Subclasses set ``name``, ``VERSION``, ``generate``, ``SPLITS`` and:

  * ``INPUT``: the field of the inputs, float32 ``[input_dim(options)]``;
  * ``TASKS``: the task names, each a float32 scalar field;
  * ``input_dim``: ``options -> d`` (a staticmethod; default: the option
    ``input_dim``).
  """

  INPUT: str = "x"
  TASKS: tuple[str, ...] = ()

  @staticmethod
  def input_dim(options: Mapping[str, Any]) -> int:
    return int(options["input_dim"])

  @classmethod
  def features(cls, options: Mapping[str, Any]) -> dict[str, Any]:
    features = {cls.INPUT: tfds.features.Tensor(
        shape=(cls.input_dim(options),), dtype=np.float32,
        encoding=tfds.features.Encoding.BYTES)}
    features.update({task: tfds.features.Scalar(dtype=np.float32)
                     for task in cls.TASKS})
    return features


def regression_dataset(builder_cls: type[RegressionBuilder],
                       defaults: Mapping[str, Any]) -> base.DatasetSpec:
  """The :class:`DatasetSpec` of ``builder_cls``: regression tasks (dim 1,
  MSE and MAE), read into memory."""
  task = {"kind": "regression", "dim": 1, "metrics": REGRESSION_METRICS}
  return base.DatasetSpec(
      name=builder_cls.name,
      defaults=dict(defaults),
      tasks=lambda options: {name: dict(task) for name in builder_cls.TASKS},
      input_shape=lambda options: (int(builder_cls.input_dim(options)),),
      load=base.tfds_loader(builder_cls),
      input_feature=builder_cls.INPUT,
      splits=tuple(builder_cls.SPLITS),
      in_memory=True)
