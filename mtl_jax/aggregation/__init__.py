"""Gradient-level aggregation: per-task gradients ``[T, *p]`` -> one update.

Every method lives in its own module and follows :mod:`mtl_jax.aggregation.base`.
``get(name, **hparams)`` builds one; ``names()`` lists them.
"""

from mtl_jax.aggregation.adapter import as_optax, per_task_grads
from mtl_jax.aggregation.base import Aggregator, EmptyState, from_weights, gramian
from mtl_jax.registry import Registry

REGISTRY = Registry("aggregation method", __name__, {
    "mean": "mean:mean",
    "sum": "mean:sum_",
    "mgda": "mgda:mgda",
    "pcgrad": "pcgrad:pcgrad",
    "gradvac": "gradvac:gradvac",
    "graddrop": "graddrop:graddrop",
    "imtl_g": "imtl_g:imtl_g",
    "cagrad": "cagrad:cagrad",
    "nash_mtl": "nash_mtl:nash_mtl",
    "aligned_mtl": "aligned_mtl:aligned_mtl",
    "upgrad": "upgrad:upgrad",
    "dualproj": "dualproj:dualproj",
    "config": "config_method:config_method",
    "moco": "moco:moco",
    "fairgrad": "fairgrad:fairgrad",
})


def get(name: str, **hparams) -> Aggregator:
  """Builds the aggregation method ``name`` with keyword hyperparameters."""
  return REGISTRY.get(name, **hparams)


def names() -> tuple[str, ...]:
  return REGISTRY.names()


__all__ = ["Aggregator", "EmptyState", "as_optax", "from_weights", "gramian", "get",
           "names", "per_task_grads", "REGISTRY"]
