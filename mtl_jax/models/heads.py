"""Task heads: map a representation to one task's output."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import jax
from flax import nnx

from mtl_jax.models.options import frozen, group, keyword_defaults
from mtl_jax.models.trunks import MLP
from mtl_jax.tasks import Task


class Head(nnx.Module):
  """Optional hidden layers, then a linear map to the task's output size.

  Output ``[B, out_features]``: class logits (multiclass), label logits
  (binary / multi-label) or values (regression).
  """

  def __init__(self, in_features: int, task: Task, hidden: Sequence[int] = (), *,
               act: str = "relu", rngs: nnx.Rngs):
    self.hidden = MLP(in_features, tuple(hidden), act=act, rngs=rngs) if hidden else None
    width = hidden[-1] if hidden else in_features
    self.out = nnx.Linear(width, task.out_features, rngs=rngs)

  def __call__(self, z: jax.Array, *, train: bool = False) -> jax.Array:
    if self.hidden is not None:
      z = self.hidden(z, train=train)
    return self.out(z)


def build_heads(tasks: Sequence[Task], in_features: int, *, rngs: nnx.Rngs,
                hidden: Sequence[int] = (), act: str = "relu") -> nnx.Dict:
  """One :class:`Head` per task, keyed by task name.

  Architectures take ``hidden`` and ``act`` as their ``head`` dict, e.g.
  ``head=dict(hidden=(32,), act="relu")``.
  """
  return nnx.Dict({t.name: Head(in_features, t, tuple(hidden), act=act, rngs=rngs)
                   for t in tasks})


# The keys of a ``head`` option group and their defaults.
HEAD = frozen(**keyword_defaults(build_heads))


def head_options(head: Optional[Mapping[str, Any]], owner: str) -> dict[str, Any]:
  """``head`` (an architecture's option) checked and completed with defaults:
  ``{'hidden': ..., 'act': ...}``. ``owner`` leads the messages."""
  return group(head, f"{owner}: head", HEAD)
