"""Hierarchical sharing: each task reads the shared trunk at its own depth.

Søgaard & Goldberg, "Deep multi-task learning with low level tasks supervised
at lower layers", ACL 2016; Hashimoto et al., "A Joint Many-Task Model:
Growing a Neural Network for Multiple NLP Tasks", EMNLP 2017,
arXiv:1611.01587. Low-level tasks (e.g. position) attach to early trunk
layers, high-level ones (e.g. shape) to later layers, so a task's loss shapes
only the layers up to its depth.

The trunk is split into *stages* (``MLP.stage`` / ``CNN.stage``): an MLP has one stage per
dense layer; a CNN has one per conv block plus its final dense layer. A head at
a conv stage reads the feature map globally average-pooled to ``[B, C]``.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import jax
from flax import nnx

from mtl_jax.models.heads import Head
from mtl_jax.models.trunks import CNN, MLP, build_trunk, global_pool
from mtl_jax.tasks import Task


def _check_stages(trunk: nnx.Module) -> nnx.Module:
  if not isinstance(trunk, (MLP, CNN)):
    raise TypeError(f"No stages for a {type(trunk).__name__}; expected MLP or CNN.")
  return trunk


def task_depths(tasks: Sequence[Task], config: Optional[Mapping],
                num_layers: int) -> tuple[int, ...]:
  """Validated depth (1-based stage index) of each task, in task order.

  Raises:
    ValueError: for an unknown task name or a depth outside ``[1, num_layers]``.
  """
  config = dict(config or {})
  names = [t.name for t in tasks]
  unknown = sorted(set(config) - set(names))
  if unknown:
    raise ValueError(f"model.task_depth names unknown task(s) {unknown}; "
                     f"tasks: {names}.")
  depths = []
  for name in names:
    d = config.get(name, num_layers)
    if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= num_layers:
      raise ValueError(
          f"model.task_depth[{name!r}] must be an integer in [1, {num_layers}] "
          f"(the trunk has {num_layers} layers), got {d!r}.")
    depths.append(d)
  return tuple(depths)


class Hierarchical(nnx.Module):
  """``shared`` trunk; task ``t``'s head (under ``tasks``) reads stage ``depth_t``.

  Config (``config.model``): ``trunk`` (see :func:`build_trunk`), ``head``
  (``hidden``, ``act``) and ``task_depth = {task: int}``, 1-based, default
  the last stage for tasks not listed. Stages deeper than every task's depth
  are not computed (their parameters get no gradient).

  There is no single shared representation (tasks read different layers), so
  the model has no ``encode``/``decode``.
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], config, *,
               rngs: nnx.Rngs):
    self.shared = build_trunk(config.trunk, input_shape, rngs=rngs)
    self.depths = task_depths(tasks, config.get("task_depth", None),
                              _check_stages(self.shared).num_stages)
    self.names = tuple(t.name for t in tasks)
    head = config.get("head", None) or {}
    hidden, act = tuple(head.get("hidden", ())), head.get("act", "relu")
    self.tasks = nnx.Dict({
        t.name: Head(self.shared.stage_width(d - 1), t, hidden, act=act, rngs=rngs)
        for t, d in zip(tasks, self.depths)})

  def features(self, x: jax.Array, *, train: bool = False) -> list[jax.Array]:
    """Outputs of stages ``1 .. max depth`` (index ``d - 1`` for depth ``d``)."""
    out = []
    for i in range(max(self.depths)):
      x = self.shared.stage(i, x, train=train)
      out.append(x)
    return out

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    feats = self.features(x, train=train)
    return {name: self.tasks[name](global_pool(feats[d - 1]), train=train)
            for name, d in zip(self.names, self.depths)}
