"""Soft-sharing penalties: ``penalty(params) -> scalar`` added to the objective.

Each penalty lives in its own module as a pure function of stacked weights
(an array with a leading task axis ``[K, ...]``, or a pytree of them):
``l2_to_mean``, ``pairwise_l2``, ``trace_norm``, ``orthogonality``, ``l21``.

:func:`build` turns ``config.model.penalties`` (a mapping name -> weight) into
one function of the model parameters for the train step's ``penalty`` hook::

  penalty = penalties.build({"l2_to_mean": 1e-3, "trace_norm": 1e-4})
  step = make_train_step(graphdef, tasks, method, tx, penalty=penalty)

It applies every penalty to the stacked tower kernels, i.e. the leaves named
``kernel`` of ``params['cross']`` (biases and normalisation scales excluded),
each with a leading axis of size ``len(params['tasks'])`` (see
:func:`~mtl_jax.penalties.base.stacked_kernels`).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Optional

import jax

from mtl_jax.penalties.base import as_matrices, stacked_kernels
from mtl_jax.registry import Registry

REGISTRY = Registry("penalty", __name__, {
    "l2_to_mean": "l2_to_mean:l2_to_mean",
    "pairwise_l2": "pairwise_l2:pairwise_l2",
    "trace_norm": "trace_norm:trace_norm",
    "orthogonality": "orthogonality:orthogonality",
    "l21": "l21:l21",
})


def get(name: str) -> Callable:
  """The penalty function ``name`` (a function of stacked weights)."""
  return REGISTRY.factory(name)


def names() -> tuple[str, ...]:
  return REGISTRY.names()


def _weight(name: str, weight) -> float:
  if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
      or not math.isfinite(weight) or weight < 0:
    raise ValueError(f"model.penalties[{name!r}] must be a non-negative number, "
                     f"got {weight!r}.")
  return float(weight)


def build(penalty_config: Optional[Mapping[str, float]]
          ) -> Optional[Callable[[dict], jax.Array]]:
  """``penalty(params) -> scalar`` from a mapping penalty name -> weight.

  Args:
    penalty_config: e.g. ``{"l2_to_mean": 1e-3, "trace_norm": 1e-4}`` (a
      dict or ConfigDict); ``None`` or empty means no penalty.

  Returns:
    ``penalty(params) = sum_name weight * name(stacked_kernels(params))`` for
    the ``{'shared', 'tasks', 'cross'}`` parameters, or ``None`` when there
    is nothing to add (no entries, or all weights zero).

  Raises:
    ValueError: for an unknown penalty name (the message lists the valid
      ones), a negative or non-numeric weight (naming the penalty), or a
      config that is not a mapping. Applying the penalty to a model without
      stacked towers under ``cross`` raises as well (at trace time).
  """
  if penalty_config is None:
    return None
  if not hasattr(penalty_config, "items"):
    raise ValueError("model.penalties must be a mapping penalty name -> weight, "
                     f"got {penalty_config!r}.")
  terms = []
  for name, weight in sorted(penalty_config.items()):
    fn, w = get(name), _weight(name, weight)
    if w > 0:
      terms.append((fn, w))
  if not terms:
    return None

  def penalty(params: dict) -> jax.Array:
    kernels = stacked_kernels(params)
    return sum(w * fn(kernels) for fn, w in terms)

  return penalty


__all__ = ["build", "get", "names", "stacked_kernels", "as_matrices", "REGISTRY"]
