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
    solver: ``"active_set"``: Wolfe's exact active-set algorithm
      (:func:`active_set_min_norm`; ``num_iters`` bounds its cycles).
      ``"frank_wolfe"``: Frank-Wolfe with exact line search from the
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

  if solver == "active_set":
    return active_set_min_norm(gramian, num_iters)

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
                   "'active_set', 'frank_wolfe' or 'projected_gradient'.")


def _affine_minimizer(gramian: jax.Array, support: jax.Array) -> jax.Array:
  """Weights ``v`` (summing to 1, zero off ``support``) of the min-norm point
  of the affine hull of the support's points.

  Solves the KKT system ``G_SS v_S = mu 1``, ``1^T v_S = 1`` as one bordered
  ``[T + 1, T + 1]`` system (rows and columns off the support replaced by the
  identity with a zero right-hand side). The border is scaled to the
  support's largest diagonal entry so that tiny Gramian entries are not
  swamped (Wolfe's ``G + 1 1^T`` form loses them in float32), and one step of
  iterative refinement recovers the digits a near-singular ``G_SS`` loses.
  """
  t = gramian.shape[0]
  dtype = gramian.dtype
  both = support[:, None] & support[None, :]
  scale = jnp.max(jnp.where(support, jnp.diag(gramian), 0.0))
  scale = jnp.where(scale > TINY, scale, 1.0)
  g = jnp.where(both, gramian / scale, jnp.eye(t, dtype=dtype))
  border = support.astype(dtype)
  a = jnp.zeros((t + 1, t + 1), dtype)
  a = a.at[:t, :t].set(g).at[:t, t].set(border).at[t, :t].set(border)
  rhs = jnp.zeros((t + 1,), dtype).at[t].set(1.0)
  u = jnp.linalg.solve(a, rhs)
  u = u + jnp.linalg.solve(a, rhs - a @ u)
  v = jnp.where(support, u[:t], 0.0)
  total = jnp.sum(v)
  return v / jnp.where(jnp.abs(total) > TINY, total, 1.0)


def active_set_min_norm(gramian: jax.Array, max_iters: int = 250,
                        rtol: float = 0.0) -> jax.Array:
  """Exact ``argmin_{w in simplex} w^T G w`` by Wolfe's active-set algorithm.

  Wolfe, "Finding the nearest point in a polytope", Mathematical Programming
  11 (1976). The support ``S`` (the "corral") grows by the vertex ``j`` with
  the smallest ``(G w)_j`` while ``(G w)_j < w^T G w`` (a major cycle: the KKT
  condition ``(G w)_j >= w^T G w`` is violated) and shrinks in minor cycles:
  the affine minimiser ``v`` of ``S`` is taken when it lies in the relative
  interior of ``conv(S)``, otherwise ``w`` moves towards ``v`` until a weight
  hits zero and that vertex leaves ``S``. Each iteration is one major or one
  minor cycle, in a ``while_loop`` bounded by ``max_iters``; at exit ``w`` is
  the exact min-norm point of ``conv(S)`` with the KKT conditions met to
  ``rtol * max_t G_tt`` (default 0: stop only when no vertex improves in
  the working precision; the bound ends any round-off cycling).

  Args:
    gramian: ``[T, T]`` PSD Gramian, ideally normalised to unit mean diagonal.
    max_iters: bound on the number of (major + minor) cycles; the result is
      on the simplex and never worse than its start whenever it stops.
    rtol: relative KKT tolerance (see above).

  Returns:
    ``w [T]`` on the simplex.
  """
  t = gramian.shape[0]
  dtype = gramian.dtype
  if t == 1:
    return jnp.ones((1,), dtype)
  diag = jnp.diag(gramian)
  tol = rtol * jnp.maximum(jnp.max(diag), TINY)
  start = jnp.argmin(diag)
  w0 = jax.nn.one_hot(start, t, dtype=dtype)
  support0 = w0 > 0

  def major(w, support):
    gw = gramian @ w
    value = w @ gw
    score = jnp.where(support, jnp.inf, gw)
    j = jnp.argmin(score)
    improves = score[j] < value - tol
    return support.at[j].set(support[j] | improves), improves

  def minor(w, support):
    v = _affine_minimizer(gramian, support)
    interior = jnp.all(jnp.where(support, v > 0, True))
    # Largest step from w towards v keeping every weight >= 0.
    blocking = support & (v <= 0)
    gap = w - v  # >= 0 where blocking.
    ratio = jnp.where(blocking & (gap > 0), w / jnp.where(gap > 0, gap, 1.0),
                      0.0)
    ratio = jnp.where(blocking, ratio, jnp.inf)
    leave = jnp.argmin(ratio)
    theta = jnp.clip(ratio[leave], 0.0, 1.0)
    moved = jnp.maximum(w + theta * (v - w), 0.0)
    moved = jnp.where(support, moved, 0.0).at[leave].set(0.0)
    w_next = jnp.where(interior, v, moved / jnp.sum(moved))
    support_next = jnp.where(interior, support, support.at[leave].set(False))
    return w_next, support_next, interior

  def cond(carry):
    i, _, _, in_minor, done = carry
    del in_minor
    return (i < max_iters) & ~done

  def body(carry):
    i, w, support, in_minor, done = carry
    support_major, improves = major(w, support)
    w_minor, support_minor, interior = minor(w, support)
    w = jnp.where(in_minor, w_minor, w)
    support = jnp.where(in_minor, support_minor, support_major)
    done = ~in_minor & ~improves
    in_minor = jnp.where(in_minor, ~interior, improves)
    return i + 1, w, support, in_minor, done

  carry = (jnp.zeros((), jnp.int32), w0, support0, jnp.zeros((), bool),
           jnp.zeros((), bool))
  _, w, _, _, _ = jax.lax.while_loop(cond, body, carry)
  w = jnp.maximum(w, 0.0)
  w = w / jnp.maximum(jnp.sum(w), TINY)
  ok = jnp.all(jnp.isfinite(w)) & (w @ gramian @ w <= w0 @ gramian @ w0)
  return jnp.where(ok, w, w0)


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
