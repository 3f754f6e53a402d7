"""Hierarchical sharing: each task reads the shared trunk at its own depth.

Søgaard & Goldberg, "Deep multi-task learning with low level tasks supervised
at lower layers", ACL 2016; Hashimoto et al., "A Joint Many-Task Model:
Growing a Neural Network for Multiple NLP Tasks", EMNLP 2017,
arXiv:1611.01587. Low-level tasks (e.g. position) attach to early trunk
layers, high-level ones (e.g. shape) to later layers, so a task's loss shapes
only the layers up to its depth.

The trunk is split into *stages* (``MLP.stage`` / ``CNN.stage``): an MLP has one stage per
dense layer; a CNN has one per conv block plus its final dense layer. A head at
a conv stage reads the feature map globally average-pooled to ``[B, C]``. Dense
(per-pixel) tasks are refused when the model is built.

Usage::

  models.build(tasks, input_shape, arch="hierarchical",
               trunk=dict(kind="mlp", hidden=(256, 128, 64)),
               task_depth={"x": 1, "scale": 2},   # others: the last stage
               head=dict(hidden=(), act="relu"))
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import jax
from flax import nnx

from mtl_jax.models.heads import HEAD, Head, head_options, refuse_dense
from mtl_jax.models.trunks import CNN, MLP, build_trunk, global_pool, trunk_options
from mtl_jax.tasks import Task


def _check_stages(trunk: nnx.Module) -> nnx.Module:
  if not isinstance(trunk, (MLP, CNN)):
    raise TypeError(f"No stages for a {type(trunk).__name__}; expected MLP or CNN.")
  return trunk


def task_depths(tasks: Sequence[Task], task_depth: Optional[Mapping[str, int]],
                num_layers: int, owner: str = "Hierarchical") -> tuple[int, ...]:
  """Validated depth (1-based stage index) of each task, in task order.

  Raises:
    ValueError: for an unknown task name or a depth outside ``[1, num_layers]``;
      the message starts with ``owner``.
  """
  task_depth = dict(task_depth or {})
  names = [t.name for t in tasks]
  unknown = sorted(set(task_depth) - set(names))
  if unknown:
    raise ValueError(f"{owner}: task_depth names unknown task(s) {unknown}; "
                     f"tasks: {names}.")
  depths = []
  for name in names:
    d = task_depth.get(name, num_layers)
    if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= num_layers:
      raise ValueError(
          f"{owner}: task_depth[{name!r}] must be an integer in [1, {num_layers}] "
          f"(the trunk has {num_layers} layers), got {d!r}.")
    depths.append(d)
  return tuple(depths)


class Hierarchical(nnx.Module):
  """``shared`` trunk; task ``t``'s head (under ``tasks``) reads stage ``depth_t``.

  Stages deeper than every task's depth are not computed (their parameters
  get no gradient). There is no single shared representation (tasks read
  different layers), so the model has no ``encode``/``decode``.

  Args:
    tasks: the tasks.
    input_shape: shape of one example.
    rngs: initialisation keys.
    trunk: the shared trunk, an MLP or a CNN: keyword options of
      :func:`~mtl_jax.models.trunks.build_trunk`.
    task_depth: ``{task: depth}``, 1-based stage index; tasks not listed
      read the last stage.
    head: each task's head: ``hidden`` (default ``()``) and ``act`` (default
      ``'relu'``).
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], *,
               rngs: nnx.Rngs, trunk: Mapping[str, Any],
               task_depth: Optional[Mapping[str, int]] = None,
               head: Mapping[str, Any] = HEAD):
    owner = type(self).__name__
    refuse_dense(tasks, owner, "its heads read globally pooled stages of an MLP or "
                 "CNN trunk (a vector per example)")
    trunk, head = trunk_options(trunk, owner), head_options(head, owner)
    self.shared = build_trunk(input_shape, rngs=rngs, **trunk)
    self.depths = task_depths(tasks, task_depth, _check_stages(self.shared).num_stages,
                              owner)
    self.names = tuple(t.name for t in tasks)
    hidden, act = tuple(head["hidden"]), head["act"]
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
