"""Types shared by the method contracts (weighting, aggregation, penalties).

Each package types its own functions with :class:`typing.Protocol`\\ s, as
optax types ``GradientTransformation``'s fields with ``TransformInitFn`` and
``TransformUpdateFn``:

* :mod:`mtl_jax.weighting.base`: ``WeightingInit``, ``WeightingUpdate``;
* :mod:`mtl_jax.aggregation.base`: ``AggregatorInit``, ``AggregatorUpdate``,
  ``AggregatorWeights``;
* :mod:`mtl_jax.penalties.base`: ``PenaltyApply``, ``PenaltySelect``.

This module holds what they share: the state of a stateless method and the
names of the types in their signatures.
"""

from __future__ import annotations

from typing import Any, NamedTuple

PyTree = Any
"""A pytree of arrays (nested dicts, lists, tuples, NamedTuples of arrays)."""

State = Any
"""A method's state: a pytree (usually a NamedTuple) that jit can carry."""


class EmptyState(NamedTuple):
  """State of a stateless method (weighting or aggregation)."""


__all__ = ["EmptyState", "PyTree", "State"]
