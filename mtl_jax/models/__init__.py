"""Multi-task architectures (Flax NNX modules, used functionally).

``build(tasks, input_shape, seed=..., arch=..., **options)`` creates a model
(the options are the keyword arguments of the architecture's class: see its
docstring, or ``arch_options(arch)``);
``partition`` splits it into graph definition, shared, per-task, cross-task
and non-parameter state. Every model maps inputs to ``{task: output}`` and
declares its parameters under ``shared``, ``tasks`` (keyed by task name) and
optionally ``cross`` (see :mod:`mtl_jax.models.partition`). Models with one
shared representation also provide ``encode``/``decode``.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Sequence

from flax import nnx

from mtl_jax.models.options import keyword_defaults, plain
from mtl_jax.models.partition import Partition, merge, params_of, partition, task_names
from mtl_jax.registry import Registry
from mtl_jax.tasks import Task
from mtl_jax.validators import InvalidValue

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


def arch_options(arch: str) -> dict[str, Any]:
  """The options (keyword arguments) of architecture ``arch`` and their
  defaults; ``inspect.Parameter.empty`` marks a required one.

  (``inspect.signature`` of an NNX module class shows only ``*args,
  **kwargs``; this reads its ``__init__``.)
  """
  return keyword_defaults(REGISTRY.lookup(arch))


def build(tasks: Sequence[Task], input_shape: Sequence[int], *, seed: int = 0,
          arch: str = "hard_sharing", **options: Any) -> nnx.Module:
  """Builds architecture ``arch`` for ``tasks`` on inputs of ``input_shape``.

  ``options`` are the architecture's keyword arguments; option groups such as
  ``trunk`` or ``experts`` are mappings. Any mapping is accepted, ConfigDicts
  included, so a ConfigDict of options can be unpacked with ``**``.

  Raises:
    ValueError: for an unknown architecture, an unknown or a missing option
      (one line naming the architecture, the options and the valid ones), or
      an invalid option value.
  """
  cls = REGISTRY.lookup(arch)
  check_options(arch, options)
  return cls(tuple(tasks), tuple(input_shape), rngs=nnx.Rngs(seed),
             **{k: plain(v) for k, v in options.items()})


def check_options(arch: str, options: Mapping[str, Any]) -> None:
  """Raises unless ``options`` are keyword options of architecture ``arch``
  and none that it needs is missing (option values are checked when it is
  built)."""
  cls = REGISTRY.lookup(arch)
  valid = arch_options(arch)
  unknown = sorted(set(options) - set(valid))
  if unknown:
    raise InvalidValue(f"Architecture {arch!r} ({cls.__name__}) has no option(s) "
                       f"{unknown}; valid: {sorted(valid)}.")
  missing = sorted(k for k, v in valid.items()
                   if v is inspect.Parameter.empty and k not in options)
  if missing:
    raise InvalidValue(f"Architecture {arch!r} ({cls.__name__}) needs option(s) "
                       f"{missing}; valid: {sorted(valid)}.")


__all__ = ["arch_options", "build", "check_options", "partition", "merge", "params_of", "task_names",
           "Partition", "REGISTRY"]
