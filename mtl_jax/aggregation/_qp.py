"""Small in-graph solvers shared by the dual-cone and bargaining methods.

Every solver here works on a ``[T, T]`` matrix (a task Gramian, ``T`` at most a
few dozen), runs inside ``jit`` with a static bound on its iterations (no host
round trips; the active-set solver exits early on device once its KKT
conditions hold) and never returns non-finite values from finite inputs.
The weights they return are constants of the step (``stop_gradient``), so
the solvers need not be reverse-differentiable. Callers should pass Gramians normalised with
:func:`mtl_jax.aggregation.gramians.normalize_gramian` so the tolerances below are
meaningful.

* :func:`nonnegative_qp`: ``argmin_{x >= 0} 1/2 x^T H x + c^T x`` (a
  non-negative least-squares problem in Gram form), by the Lawson–Hanson
  active-set method with a fixed step budget. Exact up to the accuracy of the
  ``[T, T]`` linear solves once the active set is found.
* :func:`lower_bounded_qp`: ``argmin_{w >= u} 1/2 w^T G w``, the dual form of
  the projection onto the dual cone of the task gradients (UPGrad, DualProj).
* :func:`power_allocation`: the positive solution of ``G w = w^{-1/alpha}``
  (FairGrad; ``alpha = 1`` gives Nash-MTL's bargaining equations), by
  monotone damped Newton with a vectorised line search, on the positive
  semi-definite part of ``G`` (:func:`psd_eigh`) with a ridge of at least
  :func:`precision_ridge`.
* :func:`clip_weights`: rescales weights to bound the update norm, with a
  norm estimate that rounding cannot make zero or negative.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from mtl_jax.aggregation.gramians import normalize_gramian
from mtl_jax.validators import above, at_least, choice, hyperparameter, positive_int

_HIGHEST = jax.lax.Precision.HIGHEST


def _float_dtype(*arrays) -> jnp.dtype:
  return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def _solve_on(hessian, linear, free):
  """Solves ``H_FF x_F = -c_F`` with ``x = 0`` off the free set ``F``."""
  pair = free[:, None] & free[None, :]
  scale = jnp.maximum(jnp.max(jnp.abs(jnp.diag(hessian))), 1.0)
  matrix = jnp.where(pair, hessian, 0.0) + jnp.diag(
      jnp.where(free, 0.0, scale))
  rhs = jnp.where(free, -linear, 0.0)
  # The matrix is symmetric positive definite whenever H_FF is (the caller's
  # contract), so Cholesky: half the cost of a pivoted LU on XLA:CPU. A block
  # that is not numerically positive definite gives NaN, which stops the
  # active-set method at its last finite iterate.
  factor = jax.scipy.linalg.cho_factor(matrix, lower=True)
  return jnp.where(free, jax.scipy.linalg.cho_solve(factor, rhs), 0.0)


def nonnegative_qp(
    hessian: jax.Array,
    linear: jax.Array,
    *,
    iterations: Optional[int] = None,
    tol: Optional[float] = None,
) -> jax.Array:
  r"""Minimises a convex quadratic over the non-negative orthant.

  .. math::
    x^\star = \arg\min_{x \ge 0} \tfrac12 x^\top H x + c^\top x,
    \qquad \text{KKT: } x \ge 0,\; Hx + c \ge 0,\; x \circ (Hx + c) = 0.

  Lawson–Hanson active set in Gram form: starting from ``x = 0`` with an
  empty free set, each step either frees the index with the most negative
  gradient and solves the equality-constrained problem on the free set, or,
  when that solution leaves the orthant, moves back to the boundary and
  drops the blocking indices. The loop ends as soon as the KKT conditions
  hold (to ``tol``), after at most ``iterations`` steps (under ``vmap``: once
  every problem of the batch is solved; finished ones are left unchanged).
  An index whose own component comes out non-positive right after it was
  freed (which only happens through rounding) is excluded for the rest of
  the solve, so rounding cannot make the method cycle. The iterate is
  feasible (``x >= 0``) after every step, and a non-finite linear solve
  (a singular free block) stops the method at the last finite iterate.

  Args:
    hessian: ``[T, T]`` symmetric positive semi-definite ``H`` (positive
      definite on the free sets the method visits; add a small ridge if
      unsure).
    linear: ``[T]`` linear term ``c``.
    iterations: number of active-set steps, static; ``None`` gives
      ``2 T + 8``. Each freed index costs one step and each drop one more;
      on random Gramians up to ``T = 64`` the method finishes within
      ``T + 8`` steps.
    tol: relative tolerance on the gradient for freeing an index, relative
      to the rounding scale ``|H| |x| + |c|`` of each gradient entry; ``None``
      gives 16 float32 machine epsilons.

  Returns:
    ``[T]`` non-negative minimiser.

  Examples:
    >>> h = jnp.array([[1.0, -1.0], [-1.0, 2.0]])
    >>> nonnegative_qp(h, jnp.array([1.0, -1.0]))  # doctest: +SKIP
    Array([0. , 0.5], dtype=float32)

  References:
    Lawson & Hanson, *Solving Least Squares Problems*, Prentice-Hall, 1974,
    chapter 23 (the NNLS algorithm).
  """
  dtype = _float_dtype(hessian, linear)
  h = jnp.asarray(hessian, dtype)
  c = jnp.asarray(linear, dtype)
  t = c.shape[-1]
  if h.shape != (t, t):
    raise ValueError(f"hessian must be [{t}, {t}] to match linear; got "
                     f"{h.shape}.")
  if iterations is None:
    iterations = 2 * t + 8
  if iterations < 1:
    raise ValueError(f"iterations must be >= 1, got {iterations!r}.")
  if tol is None:
    tol = 16 * float(jnp.finfo(jnp.float32).eps)
  abs_h = jnp.abs(h)
  index = jnp.arange(t)

  def step(_, carry):
    x, free, blocked, added, done = carry
    s = _solve_on(h, c, free)
    finite = jnp.all(jnp.isfinite(s))
    s = jnp.where(finite, s, 0.0)
    added_safe = jnp.maximum(added, 0)
    reject = (added >= 0) & (s[added_safe] <= 0)
    inside = jnp.all(jnp.where(free, s > 0, True))

    # Inside the orthant: accept s, then free the most violated index.
    dual = -(jnp.dot(h, s, precision=_HIGHEST) + c)
    threshold = tol * (jnp.dot(abs_h, jnp.abs(s), precision=_HIGHEST)
                       + jnp.abs(c))
    candidates = ~free & ~blocked & (dual > threshold)
    more = jnp.any(candidates)
    # int32 like the carry, also under jax_enable_x64 (argmax gives int64).
    j = jnp.argmax(jnp.where(candidates, dual, -jnp.inf)).astype(jnp.int32)
    free_in = free | (more & (index == j))
    added_in = jnp.where(more, j, -1)

    # Outside: step back to the boundary along s - x, drop blocking indices.
    leaving = free & (s <= 0)
    gap = x - s
    ratio = jnp.where(leaving & (gap > 0), x / jnp.where(gap > 0, gap, 1.0),
                      jnp.inf)
    k = jnp.argmin(ratio)
    alpha = jnp.clip(jnp.min(ratio), 0.0, 1.0)
    x_out = x + alpha * (s - x)
    free_out = free & (x_out > 0) & (index != k)
    x_out = jnp.where(free_out, x_out, 0.0)

    stop = done | ~finite
    x_new = jnp.where(stop | reject, x, jnp.where(inside, s, x_out))
    free_new = jnp.where(
        stop, free,
        jnp.where(reject, free & (index != added_safe),
                  jnp.where(inside, free_in, free_out)))
    blocked_new = blocked | (~stop & reject & (index == added_safe))
    added_new = jnp.where(stop | reject | ~inside, -1, added_in)
    done_new = stop | (~reject & inside & ~more)
    return x_new, free_new, blocked_new, added_new, done_new

  def not_done(carry):
    i, (*_, done) = carry
    return (i < iterations) & ~done

  init = (jnp.zeros(t, dtype), jnp.zeros(t, bool), jnp.zeros(t, bool),
          jnp.array(-1, jnp.int32), jnp.array(False))
  _, (x, *_) = jax.lax.while_loop(
      not_done, lambda carry: (carry[0] + 1, step(carry[0], carry[1])),
      (jnp.array(0, jnp.int32), init))
  return x


def lower_bounded_qp(
    gramian: jax.Array,
    lower: jax.Array,
    *,
    iterations: Optional[int] = None,
    tol: Optional[float] = None,
) -> jax.Array:
  r"""``argmin_{w >= u} 1/2 w^T G w``: the dual-cone projection, in weights.

  With ``G = J J^T`` this is the dual of projecting ``J^T u`` onto the dual
  cone ``{v : J v >= 0}`` of the task gradients: the projection is ``J^T w``
  (Quinton & Rey, 2024, Proposition 1). Solved as :func:`nonnegative_qp` in
  ``v = w - u``: ``min_{v >= 0} 1/2 v^T G v + (G u)^T v``.

  Args:
    gramian: ``[T, T]`` positive (semi-)definite Gramian, ideally normalised
      and regularised (``G / s + eps I``).
    lower: ``[T]`` lower bound ``u``; a leading batch axis is not supported
      (``vmap`` this function instead).
    iterations: active-set steps (see :func:`nonnegative_qp`).
    tol: relative KKT tolerance (see :func:`nonnegative_qp`).

  Returns:
    ``[T]`` weights ``w >= u``; at the optimum ``G w >= 0`` and
    ``(w - u) o G w = 0``.

  Examples:
    >>> g = jnp.array([[1.0, -2.0], [-2.0, 5.0]])  # g1 = (1, 0), g2 = (-2, 1)
    >>> lower_bounded_qp(g, jnp.array([0.5, 0.5]))  # doctest: +SKIP
    Array([1. , 0.5], dtype=float32)

  References:
    Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization",
    arXiv:2406.16232, 2024.
  """
  dtype = _float_dtype(gramian, lower)
  g = jnp.asarray(gramian, dtype)
  u = jnp.asarray(lower, dtype)
  v = nonnegative_qp(g, jnp.dot(g, u, precision=_HIGHEST),
                     iterations=iterations, tol=tol)
  return u + v


DUAL_CONE_REDUCTIONS = ("mean", "sum")


def check_dual_cone_options(reg_eps: float, norm_eps: float, reduction: str,
                            iterations: Optional[int],
                            trace_threshold: float = 0.0) -> None:
  """Checks the hyperparameters that UPGrad and DualProj share."""
  at_least(reg_eps, hyperparameter("reg_eps"), 0)
  at_least(trace_threshold, hyperparameter("trace_threshold"), 0)
  above(norm_eps, hyperparameter("norm_eps"), 0)
  choice(reduction, hyperparameter("reduction"), DUAL_CONE_REDUCTIONS)
  if iterations is not None:
    positive_int(iterations, hyperparameter("iterations"))


def dual_cone_matrix(gramian: jax.Array, reg_eps: float, norm_eps: float,
                     trace_threshold: float = 0.0) -> jax.Array:
  """``G / tr(G) + reg_eps I``: the problem matrix of the dual-cone projections.

  Shared by UPGrad and DualProj (Quinton & Rey, 2024), which project onto the
  dual cone of the task gradients by solving ``min_{w >= u} w^T M w``. A
  Gramian whose trace is below ``trace_threshold`` is replaced by zero (as
  TorchJD's normalisation does with its ``norm_eps``), so ``M = reg_eps I``
  and the weights are the preference vector.
  """
  t = gramian.shape[0]
  g, _ = normalize_gramian(gramian, norm_eps)
  if trace_threshold > 0:
    g = jnp.where(jnp.trace(gramian) < trace_threshold, 0.0, g)
  return g / t + reg_eps * jnp.eye(t, dtype=g.dtype)


def _remainder(w, r, p):
  """``h(w (1 + r)) - h(w) - h'(w) w r`` for ``h(w) = w^p / p`` (log at 0).

  Computed without cancellation for small ``r`` by its Taylor series.
  """
  if p == 0:
    exact = jnp.log1p(r) - r
    wp = jnp.ones_like(w)
  else:
    wp = w ** p
    exact = wp * (jnp.expm1(p * jnp.log1p(r)) - p * r) / p
  c2, c3 = (p - 1) / 2, (p - 1) * (p - 2) / 6
  c4 = (p - 1) * (p - 2) * (p - 3) / 24
  series = wp * r * r * (c2 + r * (c3 + r * c4))
  return jnp.where(jnp.abs(r) < 1e-2, series, exact)


def psd_eigh(gramian: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""Eigendecomposition of the positive semi-definite part of a Gramian.

  A Gramian ``G = J J^T`` is positive semi-definite, but one computed in
  floating point is only so up to rounding: when task gradients are
  (anti-)parallel to working precision its smallest eigenvalues come out as
  ``+-eps * lambda_max`` and can be negative (e.g. ``-4e-9`` next to ``0.69``
  in float32). Methods that rely on convexity must not see them.

  Args:
    gramian: ``[T, T]`` (nearly) symmetric matrix.

  Returns:
    ``(lam, vec, neg)``: eigenvalues clamped at zero (ascending), the
    orthonormal eigenvectors (columns) and the removed negative parts
    ``min(lambda, 0)``, so that ``G_+ = G - vec diag(neg) vec^T =
    vec diag(lam) vec^T``.
  """
  g = jnp.asarray(gramian, _float_dtype(gramian))
  lam, vec = jnp.linalg.eigh(0.5 * (g + g.T))
  neg = jnp.minimum(lam, 0.0)
  return lam - neg, vec, neg


def precision_ridge(lam_max: jax.Array, dtype=jnp.float32) -> jax.Array:
  """The smallest meaningful ridge for a Gramian: one ulp of ``lambda_max``.

  Eigenvalues of a Gramian computed in ``dtype`` are only known to about
  ``eps * lambda_max``; below that a direction is numerically a null
  direction, and a smaller ridge would let rounding decide how large the
  weights along it get.
  """
  return float(jnp.finfo(dtype).eps) * jnp.maximum(lam_max, 0.0)


def power_allocation(
    gramian: jax.Array,
    alpha: float = 1.0,
    *,
    ridge: float = 0.0,
    iterations: int = 30,
    line_search: int = 8,
) -> jax.Array:
  r"""The positive solution of ``(G_+ + ridge I) w = w^{-1/alpha}``.

  It is the unique minimiser of the strictly convex

  .. math::
    F(w) = \tfrac12 w^\top (G_+ + \epsilon I) w - \sum_t h(w_t), \qquad
    h(w) = \begin{cases} \log w & \alpha = 1 \\
                         w^p / p,\; p = 1 - 1/\alpha & \text{otherwise,}
           \end{cases}

  over ``w > 0`` (``h`` is concave, ``h'(w) = w^{-1/alpha}``, powers
  element-wise). ``alpha = 1`` gives ``G w = 1 / w``, the Nash bargaining
  equations of Nash-MTL; general ``alpha`` is FairGrad's alpha-fair
  allocation.

  Robustness to rounding (task gradients anti-parallel or duplicated to
  working precision, where a float32 Gramian is indefinite by ``~eps``):

  * ``G_+`` is the positive semi-definite part of ``G``
    (:func:`psd_eigh`): negative eigenvalues, which only rounding produces,
    are set to zero, and every curvature ``x^T (G_+ + eps I) x`` is
    evaluated as a sum of non-negative terms ``(lambda_i + eps) (v_i^T
    x)^2``, so ``F`` is convex and coercive *as computed*.
  * The ridge is raised to at least :func:`precision_ridge`
    (``eps_machine * lambda_max(G)``): eigenvalues below it are rounding
    noise, so a smaller ridge would let rounding set the weights along
    numerically null directions. This bounds the solution,
    ``eps ||w||^2 <= w^T (G_+ + eps I) w = sum_t w_t^p``
    (``||w|| <= sqrt(T / eps)`` for ``alpha = 1``).
  * The iteration is monotone: each step takes the best of ``line_search``
    halvings of the (Jacobi-scaled) Newton step and of a diagonally scaled
    gradient step, cut to stay inside ``w > 0`` (at most 99% of the way to
    the boundary), by an exact, cancellation-free evaluation of ``F(w + t d)
    - F(w)``. A step that does not decrease ``F`` is only taken when it is
    below rounding (``|t d / w| <= 1e-3``, at convergence); otherwise ``w``
    is kept. So the iterates never leave the level set of the start, which
    the ridge bounds.

  Start: ``w_t ∝ G_tt^{-alpha / (1 + alpha)}`` (exact for orthogonal
  gradients), scaled by the best factor along that ray.

  Args:
    gramian: ``[T, T]`` positive semi-definite matrix (a normalised Gramian;
      rounding-level negative eigenvalues are tolerated).
    alpha: fairness exponent ``> 0`` (static).
    ridge: ``eps >= 0`` (may be traced), raised to at least
      :func:`precision_ridge` of ``G``; ``0`` needs a non-zero ``G`` whose
      equations have a solution.
    iterations: Newton steps (static).
    line_search: candidate step sizes per direction and step (static).

  Returns:
    ``[T]`` positive ``w``.

  Examples:
    >>> power_allocation(jnp.diag(jnp.array([1.0, 4.0])))  # doctest: +SKIP
    Array([1. , 0.5], dtype=float32)

  References:
    Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022,
    arXiv:2202.01017; Ban & Ji, "Fair Resource Allocation in Multi-Task
    Learning", ICML 2024, arXiv:2402.15638.
  """
  if not alpha > 0:
    raise ValueError(f"alpha must be > 0, got {alpha!r}.")
  if isinstance(ridge, (int, float)) and not ridge >= 0:
    raise ValueError(f"ridge must be >= 0, got {ridge!r}.")
  alpha = float(alpha)
  p = 0.0 if alpha == 1.0 else 1.0 - 1.0 / alpha
  dtype = _float_dtype(gramian)
  g = jnp.asarray(gramian, dtype)
  g = 0.5 * (g + g.T)
  t = g.shape[-1]
  tiny = jnp.finfo(dtype).tiny
  lam, vec, neg = psd_eigh(g)
  ridge = jnp.maximum(jnp.asarray(ridge, dtype),
                      precision_ridge(lam[-1], dtype))
  lam_r = lam + ridge                      # eigenvalues of G_+ + eps I
  eye = jnp.eye(t, dtype=dtype)

  def apply(x):
    """``(G_+ + eps I) x``; exactly ``G x + eps x`` when ``G`` is PSD."""
    correction = jnp.dot(vec, neg * jnp.dot(vec.T, x, precision=_HIGHEST),
                         precision=_HIGHEST)
    return jnp.dot(g, x, precision=_HIGHEST) + ridge * x - correction

  def curvature(x):
    """``x^T (G_+ + eps I) x`` as a sum of non-negative terms (batched)."""
    y = jnp.dot(x, vec, precision=_HIGHEST)
    return jnp.sum(lam_r * y * y, axis=-1)

  # Start on the ray of the orthogonal-gradient solution, best point on it.
  diag = jnp.maximum(jnp.diag(g), 0.0)
  w0 = jnp.maximum(diag + ridge, tiny) ** (-alpha / (1.0 + alpha))
  quad = jnp.maximum(curvature(w0), tiny)
  total = jnp.sum(w0 ** p)
  w0 = w0 * (total / quad) ** (1.0 / (2.0 - p))
  steps = 0.5 ** jnp.arange(line_search, dtype=dtype)

  def newton(_, w):
    grad = apply(w) - w ** (p - 1.0)
    # Jacobi scaling by the barrier's curvature D = (1 - p) w^(p - 2):
    # S (G_+ + eps I) S + I with S = D^(-1/2) has eigenvalues >= 1.
    s = w ** (1.0 - 0.5 * p) / jnp.sqrt(1.0 - p)
    a = s[:, None] * vec
    m = jnp.dot(a * lam_r, a.T, precision=_HIGHEST) + eye
    d_newton = s * jnp.linalg.solve(m, -s * grad)
    d_newton = jnp.where(jnp.all(jnp.isfinite(d_newton)), d_newton, 0.0)
    d_grad = -s * s * grad           # diagonal Newton: always descending
    ds = jnp.stack([d_newton, d_grad])                        # [2, T]
    slope = jnp.dot(ds, grad, precision=_HIGHEST)             # [2]
    ds = jnp.where((slope < 0)[:, None], ds, 0.0)
    slope = jnp.minimum(slope, 0.0)
    to_boundary = jnp.min(
        jnp.where(ds < 0, -w / jnp.where(ds < 0, ds, -1.0), jnp.inf), axis=1)
    cap = jnp.minimum(1.0, 0.99 * to_boundary)                # [2]
    ts = cap[:, None] * steps                                 # [2, L]
    # F(w + t d) - F(w), exactly: linear + quadratic + concave remainder.
    r = ts[:, :, None] * ds[:, None, :] / w                   # [2, L, T]
    change = (ts * slope[:, None] + 0.5 * ts * ts * curvature(ds)[:, None]
              - jnp.sum(_remainder(w, r, p), axis=-1))
    change = jnp.where(jnp.isfinite(change), change, jnp.inf).reshape(-1)
    best = jnp.argmin(change)
    decrease = change[best] < 0
    candidates = ts[:, :, None] * ds[:, None, :]
    step_best = candidates.reshape(-1, t)[best]
    # No visible decrease: take the Newton step only if it is below
    # rounding (convergence); otherwise keep w.
    step_full = cap[0] * ds[0]
    tiny_step = jnp.max(jnp.abs(step_full) / w) <= 1e-3
    step = jnp.where(decrease, step_best,
                     jnp.where(tiny_step, step_full, 0.0))
    w_new = w + step
    ok = jnp.all(jnp.isfinite(w_new)) & jnp.all(w_new > 0)
    return jnp.where(ok, w_new, w)

  return jax.lax.fori_loop(0, iterations, newton, w0)


def clip_weights(weights: jax.Array, gramian: jax.Array,
                 max_norm: float) -> jax.Array:
  r"""Scales ``w`` so that ``||J^T w|| = sqrt(w^T G w) <= max_norm``.

  The norm is computed from rescaled ``w`` and ``G`` so that it neither
  overflows for huge gradients nor turns ``0 * inf`` into NaN.

  It is also robust to rounding. When the weighted gradients cancel (task
  gradients anti-parallel to working precision), ``w^T G w`` computed from
  a float32 Gramian is pure rounding noise, of size ``~eps (sum_t |w_t|
  ||g_t||)^2``, and can even be negative (a rounding-indefinite Gramian),
  while the update ``sum_t w_t g_t`` computed from the gradients has a
  rounding error of the same order. So the squared norm used here is

  .. math::
    \max(w^\top G w, 0) + 2 T \epsilon_{\text{mach}}
    \Big(\sum_t |w_t| \sqrt{G_{tt}}\Big)^2 ,

  an upper bound of ``||J^T w||^2`` that is never zero for a non-zero
  update; it changes the norm by a relative ``~T^2 eps`` when the
  gradients do not cancel.

  Args:
    weights: ``[T]`` weights ``w``.
    gramian: ``[T, T]`` Gramian ``G = J J^T``.
    max_norm: largest allowed norm, ``> 0``.

  Returns:
    ``w * min(1, max_norm / ||J^T w||)``.
  """
  dtype = _float_dtype(weights, gramian)
  w = jnp.asarray(weights, dtype)
  g = jnp.asarray(gramian, dtype)
  t = w.shape[-1]
  tiny = jnp.finfo(dtype).tiny
  eps = float(jnp.finfo(dtype).eps)
  w_scale = jnp.maximum(jnp.max(jnp.abs(w)), tiny)
  g_scale = jnp.maximum(jnp.max(jnp.abs(jnp.diag(g))), tiny)
  u = w / w_scale
  gn = g / g_scale
  quad = jnp.dot(u, jnp.dot(gn, u, precision=_HIGHEST), precision=_HIGHEST)
  gross = jnp.sum(jnp.abs(u) * jnp.sqrt(jnp.maximum(jnp.diag(gn), 0.0)))
  quad = jnp.maximum(quad, 0.0) + 2.0 * t * eps * gross * gross
  unit_norm = jnp.sqrt(quad) * jnp.sqrt(g_scale)  # of J^T u
  norm = w_scale * unit_norm
  # Clipped: u * max_norm / ||J^T u||, which never under- or overflows.
  clipped = u * (max_norm / jnp.maximum(unit_norm, tiny))
  return jnp.where(norm > max_norm, clipped, w)
