"""The two-task toy problem of CAGrad, Nash-MTL and FAMO, and its dataset.

With ``theta = (x1, x2)``::

  f1 = log(max(|0.5 (-x1 - 7) - tanh(-x2)|, 5e-6)) + 6
  f2 = log(max(|0.5 (-x1 + 3) + tanh(-x2) + 2|, 5e-6)) + 6
  g1 = ((-x1 + 7)^2 + 0.1 (-x2 - 8)^2) / 10 - 20
  g2 = ((-x1 - 7)^2 + 0.1 (-x2 - 8)^2) / 10 - 20
  c1 = max(tanh(0.5 x2), 0);  c2 = max(tanh(-0.5 x2), 0)
  L1 = c1 f1 + c2 g1;  L2 = c1 f2 + c2 g2

Nash-MTL and FAMO scale ``L1`` by 0.1 (``scale_l1=0.1``). Optimised from
:data:`TOY_STARTS` with Adam (lr 1e-3) for 35k-100k steps, a plain summed loss
gets stuck on some starts while CAGrad, Nash-MTL and FAMO reach the Pareto set.

The problem is a function (:func:`toy_losses`: optimise ``theta`` directly)
and a dataset, ``toy``: its two loss surfaces as a 2-task regression. Each
example is a point ``theta`` float32 ``[2]`` with targets ``l1`` and ``l2``
(``toy_losses(theta, scale_l1)``), so a model fits ``theta -> (L1, L2)``:
two tasks of very different shape on one input (L1 and L2 share their gates
``c1``, ``c2`` but not their branches). Splits: ``train``, ``validation``,
``test``, ``theta ~ U(-bound, bound)^2`` (``bound=10`` covers every start),
drawn from ``SeedSequence([seed, index of split])``; ``starts`` holds the five
:data:`TOY_STARTS` and ``cagrad_starts`` the three :data:`CAGRAD_STARTS`, in
order, so that anyone can load the benchmark's starting points (and the losses
there) from the data. Options: ``bound`` (10), ``scale_l1`` (1), split sizes
``num_train`` (8000), ``num_validation``, ``num_test`` (1000 each), ``seed``.

Example::

  losses = toy_losses(jnp.array(TOY_STARTS[0]))               # [2]
  jacobian = jax.jacrev(toy_losses)(theta)                     # [2, 2]
  # The starts from the data ([5, 2]; targets: the losses there):
  starts = next(data.build({"name": "toy"}, "starts", batch_size=5, seed=0,
                           shuffle=False, drop_remainder=False,
                           num_epochs=1))["inputs"]
  # Fit the surfaces: configs/toy.py (a 2-task regression of theta -> L1, L2).

References:
  Liu, Liu, Jin, Stone, Liu. Conflict-Averse Gradient Descent for Multi-task
  Learning (CAGrad). NeurIPS 2021.
  Navon et al. Multi-Task Learning as a Bargaining Game (Nash-MTL). ICML 2022.
  Liu, Liang, Liu, Stone, Liu. FAMO: Fast Adaptive Multitask Optimization.
  NeurIPS 2023.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data import base, embedded
from mtl_jax.validators import above

# Starting points of Nash-MTL and FAMO.
TOY_STARTS = ((-8.5, 7.5), (0.0, 0.0), (9.0, 9.0), (-7.5, -0.5), (9.0, -1.0))
# Starting points of CAGrad (with c = 0.5).
CAGRAD_STARTS = ((-8.5, 7.5), (-8.5, -5.0), (9.0, 9.0))

DEFAULTS = {"bound": 10.0, "scale_l1": 1.0, "num_train": 8000,
            "num_validation": 1000, "num_test": 1000, "seed": 0}
FIXED_POINTS = {"starts": TOY_STARTS, "cagrad_starts": CAGRAD_STARTS}
SPLITS = base.SPLITS + tuple(FIXED_POINTS)


def _f(x1, x2):
  f1 = jnp.log(jnp.maximum(jnp.abs(0.5 * (-x1 - 7) - jnp.tanh(-x2)), 5e-6)) + 6
  f2 = jnp.log(jnp.maximum(jnp.abs(0.5 * (-x1 + 3) + jnp.tanh(-x2) + 2),
                           5e-6)) + 6
  return f1, f2


def _g(x1, x2):
  g1 = ((-x1 + 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
  g2 = ((-x1 - 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
  return g1, g2


def toy_losses(theta: jax.Array, scale_l1: float = 1.0) -> jax.Array:
  """The two losses ``[L1 * scale_l1, L2]`` at ``theta = (x1, x2)``."""
  x1, x2 = theta[0], theta[1]
  f1, f2 = _f(x1, x2)
  g1, g2 = _g(x1, x2)
  c1 = jnp.maximum(jnp.tanh(0.5 * x2), 0.0)
  c2 = jnp.maximum(jnp.tanh(-0.5 * x2), 0.0)
  return jnp.stack([scale_l1 * (c1 * f1 + c2 * g1), c1 * f2 + c2 * g2])


# --- The dataset ----------------------------------------------------------------


def _check(options: Mapping[str, Any]) -> None:
  above(options["bound"], "toy: bound", 0)
  above(options["scale_l1"], "toy: scale_l1", 0)  # a positive scale keeps the Pareto set
  embedded.check_split_sizes("toy", options)


def inputs(options: Mapping[str, Any], split: str) -> np.ndarray:
  """The points ``theta`` float32 ``[n, 2]`` of ``split``."""
  _check(options)
  if split in FIXED_POINTS:
    return np.asarray(FIXED_POINTS[split], np.float32)
  bound = float(options["bound"])
  size = (int(options[f"num_{split}"]), 2)
  return embedded.split_rng(options, split).uniform(
      -bound, bound, size).astype(np.float32)


def generate(options: Mapping[str, Any], split: str) -> dict[str, np.ndarray]:
  """All examples of ``split`` as arrays (what the builder writes)."""
  theta = inputs(options, split)
  with embedded.on_cpu():
    losses = jax.vmap(toy_losses, in_axes=(0, None))(
        jnp.asarray(theta), float(options["scale_l1"]))
  losses = np.asarray(losses, np.float32)
  return {"theta": theta, "l1": losses[:, 0], "l2": losses[:, 1]}


class Toy(embedded.RegressionBuilder, skip_registration=True):
  """The loss surfaces of the two-task toy problem (CAGrad, Nash-MTL, FAMO)."""

  name = "toy"
  VERSION = tfds.core.Version("1.0.0")
  INPUT, TASKS, SPLITS = "theta", ("l1", "l2"), SPLITS
  generate = staticmethod(generate)
  input_dim = staticmethod(lambda options: 2)  # theta = (x1, x2)


DATASET = embedded.regression_dataset(Toy, DEFAULTS)
