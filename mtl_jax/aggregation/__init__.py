"""Gradient-level aggregation: per-task gradients ``[T, *p]`` -> one update.

Every method lives in its own module and follows :mod:`mtl_jax.aggregation.base`.
``get(name, **hparams)`` builds one; ``names()`` lists them. What a Gramian
``G = J J^T`` gives (task norms, cosines, normalisation) is in
:mod:`mtl_jax.aggregation.gramians`.
"""

from mtl_jax.aggregation.adapter import as_optax, per_task_grads
from mtl_jax.aggregation.base import Aggregator, EmptyState, from_weights, gramian
from mtl_jax.registry import Registry

# Method ``name`` is the function ``name`` of module ``name``, but for three.
REGISTRY = Registry("aggregation method", __name__, {
    "mean": "mean:mean", "sum": "mean:sum_", "config": "config_method:config_method",
    **{name: f"{name}:{name}" for name in (
        "mgda", "pcgrad", "gradvac", "graddrop", "imtl_g", "cagrad", "nash_mtl",
        "aligned_mtl", "upgrad", "dualproj", "moco", "fairgrad", "db_mtl",
        "excess_mtl")}})


def get(name: str, **hparams) -> Aggregator:
  """Builds the aggregation method ``name`` with keyword hyperparameters."""
  return REGISTRY.get(name, **hparams)


def names() -> tuple[str, ...]:
  return REGISTRY.names()


__all__ = ["Aggregator", "EmptyState", "as_optax", "from_weights", "gramian", "get",
           "names", "per_task_grads", "REGISTRY"]
