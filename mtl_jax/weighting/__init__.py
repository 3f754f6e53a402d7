"""Loss-level weighting methods: per-task losses ``[T]`` -> weights ``[T]``.

Every method lives in its own module and follows :mod:`mtl_jax.weighting.base`.
``get(name, **hparams)`` builds one; ``names()`` lists them.
"""

from mtl_jax.registry import Registry
from mtl_jax.weighting.base import EmptyState, Weighting

REGISTRY = Registry("weighting method", __name__, {
    "equal": "equal:equal",
    "fixed": "fixed:fixed",
    "uncertainty": "uncertainty:uncertainty",
    "dwa": "dwa:dwa",
    "rlw": "rlw:rlw",
    "gls": "gls:gls",
    "scale_invariant": "scale_invariant:scale_invariant",
    "imtl_l": "imtl_l:imtl_l",
    "gradnorm": "gradnorm:gradnorm",
    "famo": "famo:famo",
    "stch": "stch:stch",
    "db_mtl": "db_mtl:db_mtl",
    "excess_mtl": "excess_mtl:excess_mtl",
    "task_exponent": "task_exponent:task_exponent",
})


def get(name: str, **hparams) -> Weighting:
  """Builds the weighting method ``name`` with keyword hyperparameters."""
  return REGISTRY.get(name, **hparams)


def names() -> tuple[str, ...]:
  return REGISTRY.names()


__all__ = ["Weighting", "EmptyState", "get", "names", "REGISTRY"]
