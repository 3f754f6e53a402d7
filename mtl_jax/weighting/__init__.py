"""Loss-level weighting methods: per-task losses ``[T]`` -> weights ``[T]``.

Every method lives in its own module and follows :mod:`mtl_jax.weighting.base`.
``get(name, **hparams)`` builds one; ``names()`` lists them.
"""

from mtl_jax.registry import Registry
from mtl_jax.weighting.base import EmptyState, Weighting

# Each method ``name`` is the function ``name`` of module ``name``.
REGISTRY = Registry("weighting method", __name__, {
    name: f"{name}:{name}" for name in (
        "equal", "fixed", "uncertainty", "dwa", "rlw", "gls", "scale_invariant",
        "imtl_l", "gradnorm", "famo", "stch", "db_mtl_norms",
        "excess_mtl_norms", "task_exponent")})


def get(name: str, **hparams) -> Weighting:
  """Builds the weighting method ``name`` with keyword hyperparameters."""
  return REGISTRY.get(name, **hparams)


def names() -> tuple[str, ...]:
  return REGISTRY.names()


__all__ = ["Weighting", "EmptyState", "get", "names", "REGISTRY"]
