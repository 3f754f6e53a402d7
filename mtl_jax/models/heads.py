"""Task heads: map a representation to one task's output.

A trunk gives either a vector ``[B, features]`` (``mlp``, ``cnn``, ``resnet``)
or a feature map ``[B, h, w, C]`` (``segnet``, ``dilated_resnet``; such a trunk
has ``spatial = True`` and its ``stride``). :func:`build_heads` gives every
per-example task a :class:`Head` (on a feature map, after global average
pooling) and every dense task (``task.dense``: segmentation, depth, normals)
a dense head from :mod:`mtl_jax.models.dense_heads`, whose output is
``[B, H, W, out_features]`` at the input's resolution. A dense task on a
trunk that gives a vector is refused when the model is built.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import jax
from flax import nnx

from mtl_jax.models.dense_heads import DENSE_HEADS, ASPPHead, ConvHead
from mtl_jax.models.options import frozen, group
from mtl_jax.models.trunks import MLP, activation, global_pool
from mtl_jax.tasks import Task
from mtl_jax.validators import choice, positive_int, widths


class Head(nnx.Module):
  """Optional hidden layers, then a linear map to the task's output size.

  Output ``[B, out_features]``: class logits (multiclass), label logits
  (binary / multi-label) or values (regression). A feature map input
  ``[B, h, w, C]`` is globally average-pooled first.
  """

  def __init__(self, in_features: int, task: Task, hidden: Sequence[int] = (), *,
               act: str = "relu", rngs: nnx.Rngs):
    self.hidden = MLP(in_features, tuple(hidden), act=act, rngs=rngs) if hidden else None
    width = hidden[-1] if hidden else in_features
    self.out = nnx.Linear(width, task.out_features, rngs=rngs)

  def __call__(self, z: jax.Array, *, train: bool = False) -> jax.Array:
    z = global_pool(z)
    if self.hidden is not None:
      z = self.hidden(z, train=train)
    return self.out(z)


# The keys of a ``head`` option group and their defaults: ``hidden`` and
# ``act`` shape the per-example heads; ``dense`` ('conv' or 'aspp'),
# ``dense_width``, ``dense_act``, ``aspp_rates`` and ``aspp_width`` the dense ones.
HEAD = frozen(hidden=(), act="relu", dense="conv", dense_width=None,
              dense_act="identity", aspp_rates=(12, 24, 36), aspp_width=256)


def refuse_dense(tasks: Sequence[Task], owner: str, why: str) -> None:
  """Raises a one-line ValueError if any task is dense: ``owner`` (the
  architecture) has no per-pixel output (``why`` says what it has)."""
  for t in tasks:
    if t.dense:
      raise ValueError(f"{owner}: task {t.name!r} is dense ({t.kind}), but {why}; "
                       "dense tasks need hard_sharing, independent, mtan, cross_stitch "
                       "or soft_sharing on a trunk.kind that gives a feature map "
                       "('segnet' or 'dilated_resnet').")


def make_head(task: Task, features: Any, *, rngs: nnx.Rngs,
              input_shape: Optional[Sequence[int]] = None, owner: str = "",
              hidden: Sequence[int] = (), act: str = "relu", dense: str = "conv",
              dense_width: Optional[int] = None, dense_act: str = "identity",
              aspp_rates: Sequence[int] = (12, 24, 36), aspp_width: int = 256
              ) -> nnx.Module:
  """One task's head on ``features``.

  Args:
    task: the task.
    features: the trunk (its ``out_features``, ``spatial`` and ``kind`` are
      read) or an int, the width of a vector representation.
    rngs: initialisation keys.
    input_shape: ``(H, W, C)`` of one example; needed for a dense task (its
      output resolution).
    owner: the architecture, to lead the messages.
    hidden, act, dense, dense_width, dense_act, aspp_rates, aspp_width: the
      ``head`` options (see :data:`HEAD`).

  Raises:
    ValueError: for a dense task on a trunk that gives a vector.
  """
  width = features if isinstance(features, int) else features.out_features
  if not task.dense:
    return Head(width, task, tuple(hidden), act=act, rngs=rngs)
  if not getattr(features, "spatial", False):
    kind = getattr(features, "kind", type(features).__name__)
    source = (f"the representation ([B, {width}])" if isinstance(features, int)
              else f"trunk kind {kind!r}")
    raise ValueError(f"{owner}: task {task.name!r} is dense ({task.kind}) but {source} "
                     "gives a vector [B, features], not a feature map; use "
                     "trunk.kind='segnet' or 'dilated_resnet'.")
  out_size = tuple(input_shape)[:2]
  if dense == "conv":
    return ConvHead(width, task.out_features, out_size, width=dense_width, act=dense_act,
                    rngs=rngs)
  return ASPPHead(width, task.out_features, out_size, rates=tuple(aspp_rates),
                  width=aspp_width, rngs=rngs)


def build_heads(tasks: Sequence[Task], features: Any, *, rngs: nnx.Rngs,
                input_shape: Optional[Sequence[int]] = None, owner: str = "",
                **options: Any) -> nnx.Dict:
  """One head per task (:func:`make_head`), keyed by task name.

  Architectures take the ``head`` options as their ``head`` dict, e.g.
  ``head=dict(hidden=(32,), act="relu", dense="aspp")``; ``features`` is the
  trunk (or the int width of a vector representation).
  """
  return nnx.Dict({t.name: make_head(t, features, rngs=rngs, input_shape=input_shape,
                                     owner=owner, **options)
                   for t in tasks})


def head_options(head: Optional[Mapping[str, Any]], owner: str) -> dict[str, Any]:
  """``head`` (an architecture's option) checked and completed with defaults:
  keyword options of :func:`make_head`. ``owner`` leads the messages."""
  head = group(head, f"{owner}: head", HEAD)
  name = f"{owner}: head"
  choice(head["dense"], f"{name}.dense", DENSE_HEADS)
  activation(head["dense_act"])
  if head["dense_width"] is not None:
    head["dense_width"] = positive_int(head["dense_width"], f"{name}.dense_width")
  head["aspp_rates"] = widths(head["aspp_rates"], f"{name}.aspp_rates")
  head["aspp_width"] = positive_int(head["aspp_width"], f"{name}.aspp_width")
  return head
