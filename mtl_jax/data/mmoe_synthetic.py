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

from typing import Any, Mapping

import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data import base

DEFAULTS = {"correlation": 0.5, "input_dim": 100, "num_sines": 10,
            "scale": 1.0, "noise": 0.01, "num_train": 8000,
            "num_validation": 1000, "num_test": 1000, "seed": 0}
_WEIGHTS_STREAM = len(base.SPLITS)  # seed stream of the task weights


def _check(options: Mapping[str, Any]) -> None:
  if not 0.0 <= options["correlation"] <= 1.0:
    raise ValueError("mmoe_synthetic: correlation must be in [0, 1], got "
                     f"{options['correlation']}.")
  if options["input_dim"] < 2:
    raise ValueError("mmoe_synthetic: input_dim must be >= 2, got "
                     f"{options['input_dim']}.")
  for split in base.SPLITS:
    if options[f"num_{split}"] < 1:
      raise ValueError(f"mmoe_synthetic: num_{split} must be >= 1, got "
                       f"{options[f'num_{split}']}.")


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
  weights = task_weights(options)
  rng = np.random.default_rng([int(options["seed"]), base.SPLITS.index(split)])
  n, d = int(options[f"num_{split}"]), int(options["input_dim"])
  # The float32 inputs are what the model sees, so targets are computed from them.
  x = rng.standard_normal((n, d)).astype(np.float32)
  y = targets(weights, x.astype(np.float64), int(options["num_sines"]))
  y = y + float(options["noise"]) * rng.standard_normal((n, 2))
  return {"x": x, "y1": y[:, 0].astype(np.float32),
          "y2": y[:, 1].astype(np.float32)}


class MmoeSynthetic(base.EmbeddedBuilder, skip_registration=True):
  """TFDS builder of the MMoE synthetic data; options in the builder config."""

  name = "mmoe_synthetic"
  VERSION = tfds.core.Version("1.0.0")

  def _info(self) -> tfds.core.DatasetInfo:
    dim = self.builder_config.options["input_dim"]
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "x": tfds.features.Tensor(shape=(dim,), dtype=np.float32,
                                      encoding=tfds.features.Encoding.BYTES),
            "y1": tfds.features.Scalar(dtype=np.float32),
            "y2": tfds.features.Scalar(dtype=np.float32),
        }),
        disable_shuffling=True)

  def _generate_examples(self, split):
    arrays = generate(self.builder_config.options, split)
    for i in range(len(arrays["x"])):
      yield i, {key: value[i] for key, value in arrays.items()}


def tasks(options: Mapping[str, Any]) -> dict[str, dict]:
  """The two regression tasks ``y1``, ``y2``."""
  del options
  spec = {"kind": "regression", "dim": 1, "metrics": ("mse", "mae")}
  return {"y1": dict(spec), "y2": dict(spec)}


def input_shape(options: Mapping[str, Any]) -> tuple[int]:
  return (int(options["input_dim"]),)


DATASET = base.DatasetSpec(
    name="mmoe_synthetic",
    defaults=DEFAULTS,
    tasks=tasks,
    input_shape=input_shape,
    load=base.tfds_loader(MmoeSynthetic),
    input_feature="x",
    in_memory=True,
)
