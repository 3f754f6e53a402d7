"""MGDA: the min-norm point of the convex hull of the task gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.aggregation import _solvers
from mtl_jax.aggregation.base import Aggregator, EmptyState, from_weights, stateless_init
from mtl_jax.aggregation.gramians import TINY, inverse_norms, normalize_gramian, safe_inverse
from mtl_jax.validators import choice, hyperparameter, positive_int

NORMALIZATIONS = ("none", "l2", "loss", "loss+")
SOLVERS = ("active_set", "projected_gradient", "frank_wolfe")


def mgda(normalization: str = "none", solver: str = "active_set",
         num_iters: int = 250) -> Aggregator:
  """Multiple-gradient descent: the min-norm element of the gradients' hull.

  With (optionally normalised) task gradients ``h_t = g_t / n_t``, MGDA solves

  .. math::
     \\hat w = \\arg\\min_{w \\in \\Delta_T} \\Big\\|\\sum_t w_t h_t\\Big\\|^2
             = \\arg\\min_{w \\in \\Delta_T} w^\\top N^{-1} G N^{-1} w,

  with ``G = J J^T`` and ``N = diag(n)``, and returns ``d = sum_t w_t h_t``.
  ``d`` is zero iff the point is Pareto-stationary; otherwise ``-d`` decreases
  every task loss (``g_t . d >= ||d||^2 n_t > 0``). The normalisation is a
  diagonal rescaling of the Gramian, folded into the returned weights
  ``w_t = \\hat w_t / n_t`` so that ``d = sum_t w_t g_t`` combines the
  *original* gradients:

  * ``"none"``: ``n_t = 1``; ``"l2"``: ``n_t = ||g_t||``;
  * ``"loss"``: ``n_t = L_t``; ``"loss+"``: ``n_t = L_t ||g_t||``
    (both need the ``losses`` extra; a task with zero norm or a non-positive
    loss gets ``1 / n_t = 0``, i.e. it is left out of the hull).

  (Sener & Koltun's code applies ``\\hat w`` to the un-normalised losses; here
  the direction is exactly the min-norm element of the normalised hull.)

  The problem is scale-free, so it is solved on the Gramian normalised to
  unit mean diagonal: zero, 1e-30 and 1e15 gradients behave like unit ones.
  For ``T <= 2`` the closed-form segment solution is exact. **MGDA-UB** (the
  paper's upper bound) is the same function applied by the trainer to the
  Gramian of the gradients w.r.t. the shared representation (representation
  engine): only ``weights`` is needed.

  Args:
    normalization: one of ``"none"``, ``"l2"``, ``"loss"``, ``"loss+"``.
    solver: ``"active_set"`` (default: Wolfe's exact active-set algorithm
      on the ``T x T`` Gramian, a ``KKT`` solve of the bordered system on the
      current support per cycle; exact up to the working precision of the
      Gramian, including ill-conditioned hulls), ``"projected_gradient"``
      (accelerated projected gradient on the simplex, the default before
      issue 16: it converges slowly on ill-conditioned hulls and can end far
      from the min-norm point, e.g. 0.45 relative with
      ``normalization="loss"``, ``T = 5`` and losses spread over ``e^10``)
      or ``"frank_wolfe"`` (the paper's Frank-Wolfe with exact line search
      from the best pair; sub-linear, less accurate for many tasks).
      In float32 the active-set result is exact to ~1e-5 of the largest
      gradient norm; where the min-norm point is ~1e-3 of the gradients its
      squared norm is at the Gramian's float32 resolution (~5e-5 measured).
    num_iters: fixed number of solver iterations (>= 1); for
      ``"active_set"`` the bound on its major + minor cycles (it stops
      earlier once the KKT conditions hold; about ``2 k`` cycles for a
      support of size ``k``).

  Returns:
    A stateless :class:`~mtl_jax.aggregation.base.Aggregator` with
    ``weights(gramian, state, *, losses=None)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from mtl_jax import aggregation
    >>> agg = aggregation.get("mgda")
    >>> grads = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    >>> w, _ = agg.weights(aggregation.gramian(grads), agg.init(2))
    >>> [round(x, 4) for x in w.tolist()]
    [0.8, 0.2]

  References:
    Désidéri, "Multiple-gradient descent algorithm (MGDA) for multiobjective
    optimization", Comptes Rendus Mathématique 350(5-6), 2012.
    Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization",
    NeurIPS 2018, arXiv:1810.04650.
  """
  choice(normalization, hyperparameter("normalization"), NORMALIZATIONS)
  choice(solver, hyperparameter("solver"), SOLVERS)
  positive_int(num_iters, hyperparameter("num_iters"))

  def weights(gramian: jax.Array, state: EmptyState, *, losses=None,
              **extras):
    del extras
    g = gramian.astype(jnp.promote_types(gramian.dtype, jnp.float32))
    g, s = normalize_gramian(g)
    t = g.shape[0]
    # scale_t = 1 / n_t, relative to the normalised Gramian (G / s).
    scale = jnp.ones((t,), g.dtype)
    if normalization in ("l2", "loss+"):
      inv_norm = inverse_norms(g, jnp.sqrt(TINY))
      scale = scale * inv_norm
    if normalization in ("loss", "loss+"):
      if losses is None:
        raise ValueError(
            f"mgda(normalization={normalization!r}) needs the `losses` extra.")
      losses = jnp.asarray(losses, g.dtype).reshape(t)
      scale = scale * safe_inverse(losses)
    scaled, _ = normalize_gramian(scale[:, None] * g * scale[None, :])
    w_hat = _solvers.min_norm_point(scaled, num_iters, solver)
    w = w_hat * scale
    if normalization in ("l2", "loss+"):
      w = w / jnp.sqrt(s)  # ||g_t|| = sqrt(s) * ||g_t / sqrt(s)||.
    return w, state

  return from_weights(stateless_init, weights)
