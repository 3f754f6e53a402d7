"""MGDA's default active-set solver against an independent exact solve.

The reference enumerates every support ``S`` of the simplex, solves the
bordered KKT system ``G_SS w_S = mu 1, 1^T w_S = 1`` in float64 numpy and
keeps the feasible ``w >= 0`` with the smallest ``w^T G w`` (checking the
KKT conditions ``(G w)_t >= w^T G w`` at the winner). The min-norm point
``d = sum_t w_t h_t`` is unique even where ``w`` is not, so the solvers are
compared on ``d``.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation


def _exact_min_norm_weights(gram):
  """argmin_{w in simplex} w^T G w by enumerating supports (float64)."""
  t = len(gram)
  best, best_value = None, np.inf
  for k in range(1, t + 1):
    for support in itertools.combinations(range(t), k):
      s = list(support)
      a = np.zeros((k + 1, k + 1))
      a[:k, :k] = gram[np.ix_(s, s)]
      a[:k, k] = a[k, :k] = 1.0
      rhs = np.zeros(k + 1)
      rhs[k] = 1.0
      sol = np.linalg.lstsq(a, rhs, rcond=None)[0]
      if np.linalg.norm(a @ sol - rhs) > 1e-9 * (1 + np.abs(a).max()):
        continue  # Inconsistent: no affine minimiser on this support.
      w = np.zeros(t)
      w[s] = sol[:k]
      if np.any(w < -1e-12):
        continue
      value = w @ gram @ w
      if value < best_value:
        best, best_value = w, value
  scale = np.max(np.diag(gram))
  assert np.all(gram @ best >= best_value - 1e-9 * scale)  # KKT.
  return best


def _jacobians(t, seed):
  """Random, near-collinear and badly scaled Jacobians [6, T, P]."""
  rng = np.random.default_rng(seed)
  jac = rng.normal(size=(6, t, 6))
  jac[1] += 3.0 * rng.normal(size=(1, 6))  # Nearly collinear tasks.
  jac[2] *= np.exp(rng.uniform(-4, 4, size=(t, 1)))  # Norms over 1e3.
  jac[3] = rng.normal(size=(t, 1)) * rng.normal(size=(1, 6)) \
      + 1e-3 * rng.normal(size=(t, 6))  # Rank one plus noise.
  jac[4, :, 3:] = 0.0  # Rank <= 3: rank-deficient Gramian when T > 3.
  jac[4] *= np.exp(rng.uniform(-3, 3, size=(t, 1)))
  jac[5] = np.abs(jac[5]) + 0.5 * rng.normal(size=(1, 6))
  return jac


def _run(jac, losses, dtype, **hparams):
  agg = aggregation.get("mgda", **hparams)
  fn = jax.jit(jax.vmap(lambda g, l: agg.weights(
      g, agg.init(g.shape[0]), losses=l, step=0)[0]))
  gram = np.einsum("bip,bjp->bij", jac, jac)
  gram_in = np.asarray(jnp.asarray(gram, dtype), np.float64)
  losses_in = np.asarray(jnp.asarray(losses, dtype), np.float64)
  w = fn(jnp.asarray(gram_in, dtype), jnp.asarray(losses_in, dtype))
  return np.asarray(w, np.float64), gram_in, losses_in


def _check(jac, losses, gram_in, losses_in, w, normalization, tol_hull,
           tol_rel=None):
  for b in range(len(jac)):
    # Normalised gradients h_t = g_t / n_t, in the Gramian the solver saw.
    n = np.ones(jac.shape[1])
    if normalization == "loss":
      n = losses_in[b]
    gram_h = gram_in[b] / np.outer(n, n)
    w_hat = _exact_min_norm_weights(gram_h)
    # Our direction is sum_t w_t g_t = sum_t (w_t n_t) h_t.
    diff = w[b] * n - w_hat
    err = np.sqrt(max(diff @ gram_h @ diff, 0.0))
    hull = np.sqrt(np.max(np.diag(gram_h)))
    assert np.all(w[b] >= 0)
    np.testing.assert_allclose(np.sum(w[b] * n), 1.0, atol=1e-5)
    tol = tol_hull[b] if np.ndim(tol_hull) else tol_hull
    assert err <= tol * hull, (b, err / hull)
    if tol_rel is not None:
      norm = np.sqrt(max(w_hat @ gram_h @ w_hat, 0.0))
      assert err <= tol_rel * norm + 1e-12 * hull, (b, err, norm)


@pytest.mark.parametrize("t", [2, 3, 4, 5, 6])
def test_float32_matches_exact_min_norm_point(t):
  jac = _jacobians(t, seed=t)
  losses = np.ones(jac.shape[:2])
  w, gram_in, losses_in = _run(jac, losses, jnp.float32)
  # Exact to 1e-5 of the hull's size. Case 3 (rank one plus 1e-3 noise: the
  # min-norm point is ~1e-3 of the gradients, its squared norm at float32
  # resolution of the Gramian) is resolved to 5e-5 only.
  _check(jac, losses, gram_in, losses_in, w, "none",
         [1e-5, 1e-5, 1e-5, 5e-5, 1e-5, 1e-5])


@pytest.mark.parametrize("t", [3, 4, 5, 6])
def test_float64_matches_exact_min_norm_point(t):
  jac = _jacobians(t, seed=10 + t)
  losses = np.ones(jac.shape[:2])
  with jax.enable_x64(True):
    w, gram_in, losses_in = _run(jac, losses, jnp.float64)
  _check(jac, losses, gram_in, losses_in, w, "none", 1e-9, tol_rel=1e-5)


def _loss_normalised_case():
  """The issue's ill-conditioned hull: normalization='loss', T = 5, losses
  over e^10: the min-norm point lies on a face of the small (large-loss)
  normalised gradients, ~1e4 times smaller than the others."""
  rng = np.random.default_rng(3)
  jac = rng.normal(size=(6, 5, 8)) + 0.5 * rng.normal(size=(6, 1, 8))
  losses = np.exp(rng.uniform(-5, 5, size=(6, 5)))
  return jac, losses


def _relative_errors(w, gram_in, losses_in):
  """||d - d*|| / ||d*|| per case, d* from the exact enumeration."""
  out = []
  for wb, g, n in zip(w, gram_in, losses_in):
    gram_h = g / np.outer(n, n)
    w_hat = _exact_min_norm_weights(gram_h)
    diff = wb * n - w_hat
    out.append(np.sqrt(max(diff @ gram_h @ diff, 0.0))
               / np.sqrt(w_hat @ gram_h @ w_hat))
  return np.array(out)


def test_loss_normalised_ill_conditioned_hull_float32():
  jac, losses = _loss_normalised_case()
  w, gram_in, losses_in = _run(jac, losses, jnp.float32,
                               normalization="loss")
  _check(jac, losses, gram_in, losses_in, w, "loss", 1e-5, tol_rel=1e-5)


def test_loss_normalised_ill_conditioned_hull_float64():
  jac, losses = _loss_normalised_case()
  with jax.enable_x64(True):
    w, gram_in, losses_in = _run(jac, losses, jnp.float64,
                                 normalization="loss")
  _check(jac, losses, gram_in, losses_in, w, "loss", 1e-9, tol_rel=1e-5)


def test_projected_gradient_option_is_kept_and_far_on_this_hull():
  # The former default ends up to ~0.45 relative from the min-norm point
  # here (the issue reports 0.44); the active-set default is exact.
  jac, losses = _loss_normalised_case()
  errors = {}
  for solver in ("projected_gradient", "active_set"):
    w, gram_in, losses_in = _run(jac, losses, jnp.float32,
                                 normalization="loss", solver=solver)
    errors[solver] = _relative_errors(w, gram_in, losses_in)
  assert errors["projected_gradient"].max() > 0.1
  assert errors["active_set"].max() < 1e-5
