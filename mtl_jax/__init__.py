"""mtl_jax: multi-task learning in JAX and Flax NNX.

Sharing architectures (``mtl_jax.models``), loss weighting
(``mtl_jax.weighting``), gradient aggregation (``mtl_jax.aggregation``),
soft-sharing penalties (``mtl_jax.penalties``), embedded datasets
(``mtl_jax.data``) and a jit-compiled, sharded trainer (``mtl_jax.train``).
"""

__version__ = "0.1.0"

from mtl_jax import aggregation, weighting  # noqa: E402  (cheap: lazy registries)

__all__ = ["aggregation", "weighting", "__version__"]
