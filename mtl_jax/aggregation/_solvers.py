"""Small jittable solvers shared by the aggregation methods.

Everything here works on ``[T]`` weight vectors and ``[T, T]`` Gramians, runs
inside ``jit`` with a fixed iteration count and never produces NaN or inf for
zero, rank-deficient or badly scaled inputs (callers normalise the Gramian
with :func:`mtl_jax.aggregation.gramians.normalize_gramian` first; norms,
cosines and the ``TINY`` threshold are in :mod:`mtl_jax.aggregation.gramians`).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.gramians import TINY


def project_simplex(v: jax.Array) -> jax.Array:
  """Euclidean projection of ``v [T]`` onto the probability simplex.

  The sort-based algorithm of Held, Wolfe & Crowder (1974) / Duchi et al.
  (ICML 2008): ``w = max(v - theta, 0)`` with ``theta`` chosen so that ``w``
  sums to one.
  """
  n = v.shape[-1]
  u = jnp.sort(v)[::-1]
  css = jnp.cumsum(u) - 1.0
  ind = jnp.arange(1, n + 1, dtype=v.dtype)
  rho = jnp.sum(u - css / ind > 0)  # The condition holds on a prefix.
  theta = css[jnp.maximum(rho - 1, 0)] / jnp.maximum(rho, 1).astype(v.dtype)
  return jnp.maximum(v - theta, 0.0)


def segment_min_norm(aa: jax.Array, ab: jax.Array, bb: jax.Array) -> jax.Array:
  """``gamma`` in ``[0, 1]`` minimising ``||gamma a + (1 - gamma) b||^2``.

  Only the inner products ``a.a``, ``a.b`` and ``b.b`` are needed:
  ``gamma = (b.b - a.b) / ||a - b||^2`` clipped to ``[0, 1]``; a zero-length
  segment keeps ``a`` (``gamma = 1``).
  """
  den = aa + bb - 2.0 * ab
  ok = den > TINY
  gamma = jnp.where(ok, (bb - ab) / jnp.where(ok, den, 1.0), 1.0)
  return jnp.clip(gamma, 0.0, 1.0)


def best_pair_init(gramian: jax.Array) -> jax.Array:
  """Min-norm point over the best segment ``[g_i, g_j]``: a simplex vector.

  The initialisation of Sener & Koltun's Frank-Wolfe solver (exact when
  ``T = 2``). For ``T = 1`` returns ``[1]``.
  """
  t = gramian.shape[0]
  if t == 1:
    return jnp.ones((1,), gramian.dtype)
  d = jnp.diag(gramian)
  gamma = segment_min_norm(d[:, None], gramian, d[None, :])  # [T, T]
  cost = (gamma**2 * d[:, None] + (1 - gamma)**2 * d[None, :]
          + 2 * gamma * (1 - gamma) * gramian)
  cost = jnp.where(jnp.eye(t, dtype=bool), d, cost)  # i == j: the vertex.
  flat = jnp.argmin(cost)
  i, j = flat // t, flat % t
  g = gamma[i, j]
  w = jnp.zeros((t,), gramian.dtype).at[j].add(1.0 - g).at[i].add(g)
  return w


def min_norm_point(gramian: jax.Array, num_iters: int = 250,
                   solver: str = "frank_wolfe") -> jax.Array:
  """``argmin_{w in simplex} w^T G w``: the min-norm point of the hull.

  Args:
    gramian: ``[T, T]`` PSD Gramian, ideally normalised to unit mean diagonal.
    num_iters: fixed number of iterations.
    solver: ``"frank_wolfe"``: Frank-Wolfe with exact line search from the
      best pair, as in Sener & Koltun (2018), Algorithm 2; each step moves
      towards the vertex ``e_t`` with the smallest ``(G w)_t``.
      ``"projected_gradient"``: accelerated projected gradient (FISTA) with
      step ``1 / lambda_max(G)`` bounded by the trace; faster to converge
      when the minimiser has a large support.

  Returns:
    ``w [T]`` on the simplex.
  """
  t = gramian.shape[0]
  w0 = best_pair_init(gramian)
  if t <= 2:
    return w0  # The best pair is exact.

  if solver == "frank_wolfe":
    def body(_, w):
      gw = gramian @ w
      s = jnp.argmin(gw)
      gamma = segment_min_norm(w @ gw, gw[s], gramian[s, s])
      return gamma * w + (1.0 - gamma) * jax.nn.one_hot(s, t, dtype=w.dtype)
    return jax.lax.fori_loop(0, num_iters, body, w0)

  if solver == "projected_gradient":
    def objective_grad(w):
      return 2.0 * gramian @ w
    lipschitz = 2.0 * jnp.maximum(jnp.trace(gramian), TINY)
    w = accelerated_projected_gradient(objective_grad, w0, 1.0 / lipschitz,
                                       num_iters)
    # Never worse than the start (guards against round-off on degenerate G).
    better = w @ gramian @ w <= w0 @ gramian @ w0
    return jnp.where(better, w, w0)

  raise ValueError(f"Unknown min-norm solver {solver!r}; expected "
                   "'frank_wolfe' or 'projected_gradient'.")


def accelerated_projected_gradient(
    grad_fn: Callable[[jax.Array], jax.Array], w0: jax.Array,
    step: jax.Array, num_iters: int) -> jax.Array:
  """FISTA on the simplex: ``num_iters`` projected steps with momentum.

  Beck & Teboulle (2009) with the projection of :func:`project_simplex`;
  ``step`` should be ``1 / L`` for an ``L``-smooth objective.
  """
  def body(_, carry):
    w, y, tk = carry
    w_next = project_simplex(y - step * grad_fn(y))
    t_next = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * tk * tk))
    y_next = w_next + ((tk - 1.0) / t_next) * (w_next - w)
    return w_next, y_next, t_next

  one = jnp.ones((), w0.dtype)
  w, _, _ = jax.lax.fori_loop(0, num_iters, body, (w0, w0, one))
  return w
