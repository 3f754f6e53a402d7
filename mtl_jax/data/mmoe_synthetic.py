"""Two regression tasks with a set correlation (Ma et al., KDD 2018, MMoE).

1. ``u1, u2``: two orthonormal vectors in R^d.
2. ``w1 = c u1``, ``w2 = c (p u1 + sqrt(1 - p^2) u2)``, so that
   ``cos(w1, w2) = p`` (the ``correlation`` option, in [0, 1]).
3. ``x ~ N(0, I_d)``.
4. ``y_i = w_i^T x + sum_{j=1..m} sin(alpha_j w_i^T x + beta_j) + eps``,
   ``eps ~ N(0, noise^2)``, with ``alpha_j = j`` and ``beta_j = (j - 1)^2``.

Options: ``correlation`` (p, default 0.5), ``input_dim`` (d, 100),
``num_sines`` (m, 10), ``scale`` (c, 1), ``noise`` (0.01), split sizes and
``seed``. The task weights are drawn from ``SeedSequence([seed, 3])`` (shared by
all splits); the inputs and noise of split ``s`` from
``SeedSequence([seed, index of s])``. Inputs ``x`` float32 ``[d]``; tasks ``y1``,
``y2`` regression (dim 1). In the paper, the shared-bottom model degrades much
more than MMoE as p falls.

References:
  Ma, Zhao, Yi, Chen, Hong, Chi. Modeling Task Relationships in Multi-task
  Learning with Multi-gate Mixture-of-Experts. KDD 2018.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data import base, embedded
from mtl_jax.validators import at_least, in_range

DEFAULTS = {"correlation": 0.5, "input_dim": 100, "num_sines": 10,
            "scale": 1.0, "noise": 0.01, "num_train": 8000,
            "num_validation": 1000, "num_test": 1000, "seed": 0}
_WEIGHTS_STREAM = len(base.SPLITS)  # seed stream of the task weights


def _check(options: Mapping[str, Any]) -> None:
  in_range(options["correlation"], "mmoe_synthetic: correlation", 0, 1)
  at_least(options["input_dim"], "mmoe_synthetic: input_dim", 2)
  embedded.check_split_sizes("mmoe_synthetic", options)


def task_weights(options: Mapping[str, Any]) -> np.ndarray:
  """``[2, d]`` float64: ``w1``, ``w2`` with cosine ``correlation``."""
  _check(options)
  rng = np.random.default_rng([int(options["seed"]), _WEIGHTS_STREAM])
  basis, _ = np.linalg.qr(rng.standard_normal((options["input_dim"], 2)))
  u1, u2 = basis.T
  p = float(options["correlation"])
  return float(options["scale"]) * np.stack([u1, p * u1 + np.sqrt(1 - p * p) * u2])


def targets(weights: np.ndarray, x: np.ndarray, num_sines: int) -> np.ndarray:
  """Noise-free targets ``[n, 2]``: ``w^T x + sum_j sin(j w^T x + (j-1)^2)``."""
  projections = x @ weights.T  # [n, 2]
  j = np.arange(1, num_sines + 1, dtype=np.float64)
  sines = np.sin(projections[..., None] * j + (j - 1) ** 2).sum(-1)
  return projections + sines


def generate(options: Mapping[str, Any], split: str) -> dict[str, np.ndarray]:
  """All examples of ``split`` as arrays (what the builder writes)."""
  return generate_correlations(options, split, [options["correlation"]])[0]


def generate_correlations(options: Mapping[str, Any], split: str,
                          correlations: Sequence[float]) -> list[dict[str, np.ndarray]]:
  """``split`` at each correlation, from one draw of inputs and noise.

  Element ``i`` equals ``generate({**options, 'correlation': correlations[i]},
  split)``: the inputs, the noise and ``u1, u2`` depend on the seed only, so
  datasets of one seed at several correlations share their inputs (a study
  over p reads the same ``x`` and ``y1`` at every p) and are drawn once.
  """
  rng = embedded.split_rng(options, split)
  n, d = int(options[f"num_{split}"]), int(options["input_dim"])
  # The float32 inputs are what the model sees, so targets are computed from them.
  x = rng.standard_normal((n, d)).astype(np.float32)
  noise = float(options["noise"]) * rng.standard_normal((n, 2))
  x64, out = x.astype(np.float64), []
  for p in correlations:
    weights = task_weights({**options, "correlation": p})
    y = targets(weights, x64, int(options["num_sines"])) + noise
    out.append({"x": x, "y1": y[:, 0].astype(np.float32),
                "y2": y[:, 1].astype(np.float32)})
  return out


class MmoeSynthetic(embedded.RegressionBuilder, skip_registration=True):
  """The MMoE synthetic regression data (Ma et al., KDD 2018)."""

  name = "mmoe_synthetic"
  VERSION = tfds.core.Version("1.0.0")
  INPUT, TASKS = "x", ("y1", "y2")
  generate = staticmethod(generate)


DATASET = embedded.regression_dataset(MmoeSynthetic, DEFAULTS)
