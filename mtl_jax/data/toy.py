"""The two-task toy problem of CAGrad, Nash-MTL and FAMO (a function, not data).

With ``theta = (x1, x2)``::

  f1 = log(max(|0.5 (-x1 - 7) - tanh(-x2)|, 5e-6)) + 6
  f2 = log(max(|0.5 (-x1 + 3) + tanh(-x2) + 2|, 5e-6)) + 6
  g1 = ((-x1 + 7)^2 + 0.1 (-x2 - 8)^2) / 10 - 20
  g2 = ((-x1 - 7)^2 + 0.1 (-x2 - 8)^2) / 10 - 20
  c1 = max(tanh(0.5 x2), 0);  c2 = max(tanh(-0.5 x2), 0)
  L1 = c1 f1 + c2 g1;  L2 = c1 f2 + c2 g2

Nash-MTL and FAMO scale ``L1`` by 0.1 (``scale_l1=0.1``). Optimised from
:data:`TOY_STARTS` with Adam (lr 1e-3) for 35k-100k steps, a plain summed loss
gets stuck on some starts while CAGrad, Nash-MTL and FAMO reach the Pareto set.

Example::

  losses = toy_losses(jnp.array(TOY_STARTS[0]))               # [2]
  jacobian = jax.jacrev(toy_losses)(theta)                     # [2, 2]

References:
  Liu, Liu, Jin, Stone, Liu. Conflict-Averse Gradient Descent for Multi-task
  Learning (CAGrad). NeurIPS 2021.
  Navon et al. Multi-Task Learning as a Bargaining Game (Nash-MTL). ICML 2022.
  Liu, Liang, Liu, Stone, Liu. FAMO: Fast Adaptive Multitask Optimization.
  NeurIPS 2023.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Starting points of Nash-MTL and FAMO.
TOY_STARTS = ((-8.5, 7.5), (0.0, 0.0), (9.0, 9.0), (-7.5, -0.5), (9.0, -1.0))
# Starting points of CAGrad (with c = 0.5).
CAGRAD_STARTS = ((-8.5, 7.5), (-8.5, -5.0), (9.0, 9.0))


def _f(x1, x2):
  f1 = jnp.log(jnp.maximum(jnp.abs(0.5 * (-x1 - 7) - jnp.tanh(-x2)), 5e-6)) + 6
  f2 = jnp.log(jnp.maximum(jnp.abs(0.5 * (-x1 + 3) + jnp.tanh(-x2) + 2),
                           5e-6)) + 6
  return f1, f2


def _g(x1, x2):
  g1 = ((-x1 + 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
  g2 = ((-x1 - 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
  return g1, g2


def toy_losses(theta: jax.Array, scale_l1: float = 1.0) -> jax.Array:
  """The two losses ``[L1 * scale_l1, L2]`` at ``theta = (x1, x2)``."""
  x1, x2 = theta[0], theta[1]
  f1, f2 = _f(x1, x2)
  g1, g2 = _g(x1, x2)
  c1 = jnp.maximum(jnp.tanh(0.5 * x2), 0.0)
  c2 = jnp.maximum(jnp.tanh(-0.5 * x2), 0.0)
  return jnp.stack([scale_l1 * (c1 * f1 + c2 * g1), c1 * f2 + c2 * g2])
