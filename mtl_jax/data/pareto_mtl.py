"""The synthetic two-objective problem of Pareto MTL, and its dataset.

With ``x`` in R^n (n = 20, starts drawn from U(-0.5, 0.5)^n)::

  f1(x) = 1 - exp(-sum_i (x_i - 1/sqrt(n))^2)
  f2(x) = 1 - exp(-sum_i (x_i + 1/sqrt(n))^2)

The Pareto set is the segment ``x = (t, ..., t)``, ``t`` in
``[-1/sqrt(n), 1/sqrt(n)]``, and its front is concave: there a weighted sum of
the losses only ever reaches the two ends.

The problem is a function (:func:`pareto_losses`: optimise ``x`` directly) and
a dataset, ``pareto_mtl``: its two objective surfaces as a 2-task regression.
Each example is a point ``x`` float32 ``[input_dim]`` with targets ``f1`` and
``f2``, so a model fits ``x -> (f1(x), f2(x))``. Splits: ``train``,
``validation``, ``test``, ``x ~ U(-0.5, 0.5)^n`` (the paper's initialisation
distribution: the training points are random starts), drawn from
``SeedSequence([seed, index of split])``; ``front`` holds ``num_front`` points
of the Pareto set (:func:`pareto_set`, ``t`` rising, so f1 falls and f2
rises), so that anyone can load the true front, e.g. to score a fitted model
or a method's end points against it. Options: ``input_dim`` (n, 20), split
sizes ``num_train`` (8000), ``num_validation``, ``num_test`` (1000 each),
``num_front`` (101), ``seed``.

Example::

  x0 = sample_starts(jax.random.key(0), 5)        # [5, 20]
  front = pareto_front(100)                        # [100, 2]
  # The true front from the data: batch["targets"]["f1"], ["f2"] at the
  # points batch["inputs"] [100, 20].
  batch = next(data.build({"name": "pareto_mtl", "num_front": 100}, "front",
                          batch_size=100, seed=0, shuffle=False,
                          drop_remainder=False, num_epochs=1))
  # Fit the surfaces: configs/pareto_mtl.py (a 2-task regression x -> f1, f2).

References:
  Lin, Zhen, Li, Zhang, Kwong. Pareto Multi-Task Learning. NeurIPS 2019.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data import base, embedded
from mtl_jax.validators import at_least

DIM = 20
START_RANGE = (-0.5, 0.5)  # starts are drawn from U(-0.5, 0.5)^n

DEFAULTS = {"input_dim": DIM, "num_train": 8000, "num_validation": 1000,
            "num_test": 1000, "num_front": 101, "seed": 0}
SPLITS = base.SPLITS + ("front",)


def pareto_losses(x: jax.Array) -> jax.Array:
  """The two losses ``[f1, f2]`` at ``x`` ``[n]`` (or ``[..., n]``)."""
  shift = 1.0 / jnp.sqrt(x.shape[-1])
  f1 = 1.0 - jnp.exp(-jnp.sum((x - shift) ** 2, axis=-1))
  f2 = 1.0 - jnp.exp(-jnp.sum((x + shift) ** 2, axis=-1))
  return jnp.stack([f1, f2], axis=-1)


def pareto_set(num_points: int, dim: int = DIM) -> jax.Array:
  """``num_points`` Pareto-optimal ``x = (t, ..., t)`` ``[num_points, dim]``."""
  t = jnp.linspace(-1.0, 1.0, num_points) / jnp.sqrt(dim)
  return jnp.broadcast_to(t[:, None], (num_points, dim))


def pareto_front(num_points: int, dim: int = DIM) -> jax.Array:
  """The losses ``[num_points, 2]`` along the Pareto set (f1 falls, f2 rises)."""
  return pareto_losses(pareto_set(num_points, dim))


def sample_starts(key: jax.Array, num: int, dim: int = DIM) -> jax.Array:
  """``num`` starting points from U(-0.5, 0.5)^dim, ``[num, dim]``."""
  low, high = START_RANGE
  return jax.random.uniform(key, (num, dim), minval=low, maxval=high)


# --- The dataset ----------------------------------------------------------------


def _check(options: Mapping[str, Any]) -> None:
  at_least(options["input_dim"], "pareto_mtl: input_dim", 1)
  if options["num_front"] < 2:
    raise ValueError(f"pareto_mtl: num_front must be >= 2 (the front's two "
                     f"ends), got {options['num_front']}.")
  embedded.check_split_sizes("pareto_mtl", options)


def inputs(options: Mapping[str, Any], split: str) -> np.ndarray:
  """The points ``x`` float32 ``[n, input_dim]`` of ``split``."""
  _check(options)
  dim = int(options["input_dim"])
  if split == "front":
    with embedded.on_cpu():
      return np.asarray(pareto_set(int(options["num_front"]), dim), np.float32)
  size = (int(options[f"num_{split}"]), dim)
  return embedded.split_rng(options, split).uniform(
      *START_RANGE, size).astype(np.float32)


def generate(options: Mapping[str, Any], split: str) -> dict[str, np.ndarray]:
  """All examples of ``split`` as arrays (what the builder writes)."""
  x = inputs(options, split)
  with embedded.on_cpu():
    losses = np.asarray(pareto_losses(jnp.asarray(x)), np.float32)
  return {"x": x, "f1": losses[:, 0], "f2": losses[:, 1]}


class ParetoMtl(embedded.RegressionBuilder, skip_registration=True):
  """The objective surfaces of the Pareto-MTL synthetic problem (NeurIPS 2019)."""

  name = "pareto_mtl"
  VERSION = tfds.core.Version("1.0.0")
  INPUT, TASKS, SPLITS = "x", ("f1", "f2"), SPLITS
  generate = staticmethod(generate)


DATASET = embedded.regression_dataset(ParetoMtl, DEFAULTS)
