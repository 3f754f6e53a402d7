"""CAGrad: the best worst-case improvement near the average gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregation import _solvers
from mtl_jax.aggregation.base import Aggregator, EmptyState, from_weights, stateless_init
from mtl_jax.aggregation.gramians import TINY, normalize_gramian, safe_sqrt
from mtl_jax.validators import choice, hyperparameter, in_range, positive_int

RESCALES = ("quadratic", "linear", "none")
# Smoothing of ||g_w|| inside the solver (the official code adds 1e-8 too) and
# the floor of ||g_w|| in lambda (bounds the weights near Pareto-stationary
# points, where the correction is then shortened, never lengthened); both are
# relative to the Gramian normalised to unit mean diagonal.
_SMOOTH = 1e-8
_MIN_NORM = 1e-4


def conflict_averse_weights(gramian: jax.Array, c: float,
                            num_iters: int = 200) -> jax.Array:
  """CAGrad's dual solution ``w`` on the simplex (before the final mix).

  Minimises ``F(w) = g_w . g_0 + sqrt(phi) ||g_w||`` with ``g_w = w J``,
  ``g_0 = mean_t g_t`` and ``sqrt(phi) = c ||g_0||`` over the simplex, all
  from the normalised Gramian (``F`` is positively homogeneous in ``G``, so
  ``w`` is scale-free): accelerated projected gradient from the uniform
  point with the local step ``||g_w|| / (sqrt(phi) lambda_max(G))`` (the
  curvature of the norm term), keeping the best iterate.

  Args:
    gramian: ``[T, T]`` Gramian.
    c: the radius ratio in ``[0, 1)``.
    num_iters: fixed number of iterations.

  Returns:
    ``w [T]`` on the simplex.
  """
  g = gramian.astype(jnp.promote_types(gramian.dtype, jnp.float32))
  g, _ = normalize_gramian(g)
  t = g.shape[0]
  b = jnp.full((t,), 1.0 / t, g.dtype)
  if t == 1:
    return b
  gb = g @ b
  k = c * safe_sqrt(b @ gb)
  lam_max = jnp.linalg.eigvalsh(g)[-1]
  denom = jnp.maximum(k * lam_max, TINY)

  def objective(w):
    return w @ gb + k * safe_sqrt(w @ g @ w)

  def body(_, carry):
    w, y, tk, best, f_best = carry
    gy = g @ y
    norm = jnp.sqrt(jnp.maximum(y @ gy, 0.0) + _SMOOTH)
    grad = gb + k * gy / norm
    w_next = _solvers.project_simplex(y - (norm / denom) * grad)
    t_next = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * tk * tk))
    y_next = w_next + ((tk - 1.0) / t_next) * (w_next - w)
    f = objective(w_next)
    better = f < f_best
    return (w_next, y_next, t_next, jnp.where(better, w_next, best),
            jnp.where(better, f, f_best))

  one = jnp.ones((), g.dtype)
  init = (b, b, one, b, objective(b))
  return jax.lax.fori_loop(0, num_iters, body, init)[3]


def cagrad(c: float = 0.5, rescale: str = "quadratic",
           num_iters: int = 200) -> Aggregator:
  """Conflict-averse gradient descent.

  CAGrad maximises the worst task improvement in a ball around the average
  gradient ``g_0 = mean_t g_t``:

  .. math::
     \\max_d \\min_t g_t^\\top d \\quad\\text{s.t.}\\quad
     \\|d - g_0\\| \\le c \\|g_0\\|.

  Its dual is ``min_{w in simplex} F(w) = g_w^T g_0 + sqrt(phi) ||g_w||``
  with ``phi = c^2 ||g_0||^2`` (solved on the Gramian with a fixed-iteration
  solver, :func:`conflict_averse_weights`), and the primal solution is

  .. math:: d = g_0 + \\frac{\\sqrt\\phi}{\\|g_w\\|} g_w,

  i.e. ``d = sum_t (1/T + lambda w_t) g_t`` with ``lambda = sqrt(phi) /
  ||g_w||``. As in the official implementation (``rescale=1``) the direction
  is divided by ``1 + c^2``; the paper's update (its Algorithm 1) and some
  re-implementations do not rescale: ``rescale="none"``. ``c = 0`` gives
  the mean gradient; as ``c`` grows it approaches MGDA-like behaviour. (``||g_w||`` is floored at 1e-4
  of the gradients' RMS norm in ``lambda``, which only shortens the
  correction near Pareto-stationary points and keeps the weights bounded.)

  Args:
    c: radius ratio in ``[0, 1)`` (the official default 0.5; 0.4 for NYUv2).
    rescale: ``"quadratic"``: divide by ``1 + c^2`` (official default);
      ``"linear"``: by ``1 + c``; ``"none"``.
    num_iters: fixed number of solver iterations (>= 1).

  Returns:
    A stateless :class:`~mtl_jax.aggregation.base.Aggregator` with
    ``weights``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from mtl_jax import aggregation
    >>> agg = aggregation.get("cagrad", c=0.0)
    >>> d, _ = agg.update(jnp.array([[1.0, 0.0], [0.0, 3.0]]), agg.init(2))
    >>> d.tolist()  # c = 0: the mean gradient.
    [0.5, 1.5]

  References:
    Liu, Liu, Jin, Stone & Liu, "Conflict-Averse Gradient Descent for
    Multi-task Learning", NeurIPS 2021, arXiv:2110.14048.
  """
  in_range(c, hyperparameter("c"), 0.0, 1.0, closed="left")
  choice(rescale, hyperparameter("rescale"), RESCALES)
  positive_int(num_iters, hyperparameter("num_iters"))
  divisor = {"quadratic": 1.0 + c * c, "linear": 1.0 + c, "none": 1.0}[rescale]

  def weights(gramian: jax.Array, state: EmptyState, **extras):
    del extras
    g = gramian.astype(jnp.promote_types(gramian.dtype, jnp.float32))
    g, _ = normalize_gramian(g)
    t = g.shape[0]
    b = jnp.full((t,), 1.0 / t, g.dtype)
    if c == 0.0:
      return b / divisor, state
    w = conflict_averse_weights(g, c, num_iters)
    sqrt_phi = c * safe_sqrt(b @ g @ b)
    gw_norm = safe_sqrt(w @ g @ w)
    lam = sqrt_phi / jnp.maximum(gw_norm, _MIN_NORM)
    return (b + lam * w) / divisor, state

  return from_weights(stateless_init, weights)
