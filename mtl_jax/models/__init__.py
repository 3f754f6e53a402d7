"""Multi-task architectures (Flax NNX modules, used functionally).

``build(model_config, tasks, input_shape, seed)`` creates a model;
``partition`` splits it into graph definition, shared, per-task, cross-task
and non-parameter state. Every model maps inputs to ``{task: output}`` and
declares its parameters under ``shared``, ``tasks`` (keyed by task name) and
optionally ``cross`` (see :mod:`mtl_jax.models.partition`). Models with one
shared representation also provide ``encode``/``decode``.
"""

from __future__ import annotations

from typing import Sequence

from flax import nnx

from mtl_jax.models.partition import Partition, merge, params_of, partition, task_names
from mtl_jax.registry import Registry
from mtl_jax.tasks import Task

REGISTRY = Registry("architecture", __name__, {
    "hard_sharing": "hard_sharing:HardSharing",
    "independent": "independent:Independent",
    "mtan": "mtan:MTAN",
    "mmoe": "mmoe:MMoE",
    "cgc": "cgc:CGC",
    "ple": "ple:PLE",
    "dselect_k": "dselect_k:DSelectKMoE",
    "branching": "branching:BranchingSearch",
    "soft_sharing": "soft_sharing:SoftSharing",
    "hierarchical": "hierarchical:Hierarchical",
    "task_conv": "partial_sharing:TaskConv",
    "task_encoders": "partial_sharing:TaskEncoders",
    "cross_stitch": "cross_stitch:CrossStitch",
})


def build(tasks: Sequence[Task], input_shape: Sequence[int], *, seed: int = 0,
          arch: str = "hard_sharing", **options) -> nnx.Module:
  """Builds architecture ``arch`` for ``tasks`` on inputs of ``input_shape``."""
  import ml_collections  # transitional: the classes still read a ConfigDict
  cls = REGISTRY.factory(arch)
  config = ml_collections.ConfigDict(dict(options, arch=arch))
  return cls(tuple(tasks), tuple(input_shape), config, rngs=nnx.Rngs(seed))


__all__ = ["build", "partition", "merge", "params_of", "task_names", "Partition",
           "REGISTRY"]
