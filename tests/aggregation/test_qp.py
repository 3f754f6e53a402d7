"""The in-graph solvers of ``_qp``: active-set QP, power allocation, clip."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax.aggregation import _qp

RNG = np.random.default_rng(11)


@functools.lru_cache(maxsize=None)
def _nnqp():
  """Jitted, vmapped ``nonnegative_qp``: [B, T, T], [B, T] -> [B, T]."""
  return jax.jit(jax.vmap(lambda h, c: _qp.nonnegative_qp(h, c)))


def _solve_nnqp(h, c):
  """Batches padded to 8 problems so equal T share one compilation."""
  b = len(c)
  pad = lambda x: np.concatenate([x] + [x[:1]] * (8 - b))
  out = _nnqp()(jnp.asarray(pad(h), jnp.float32),
                jnp.asarray(pad(c), jnp.float32))
  return np.asarray(out, np.float64)[:b]


def _brute_force_nnqp(h, c):
  """Exact minimiser by enumerating every free set (float64, T <= 5)."""
  t = len(c)
  best, best_value = None, np.inf
  for mask in itertools.product([False, True], repeat=t):
    free = np.array(mask)
    x = np.zeros(t)
    if free.any():
      x[free] = np.linalg.solve(h[np.ix_(free, free)], -c[free])
    if np.all(x >= -1e-12):
      value = 0.5 * x @ h @ x + c @ x
      if value < best_value:
        best, best_value = x, value
  return best


def _random_gramian(t, p, ridge=0.0, rng=RNG):
  j = rng.normal(size=(t, p))
  g = j @ j.T
  g /= np.mean(np.diag(g))
  return g + ridge * np.eye(t)


def test_nonnegative_qp_hand_computed():
  # H = [[1, -1], [-1, 2]], c = (1, -1): x1 = 0 (its gradient 1 - x2 > 0 at
  # the optimum), x2 = 1 / 2 from 2 x2 - 1 = 0; decoupled coordinates with
  # c3 = 1 > 0 and c4 = -3 give x3 = 0 and x4 = 3 / 2.
  h = np.array([[1.0, -1.0, 0, 0], [-1.0, 2.0, 0, 0], [0, 0, 1.0, 0],
                [0, 0, 0, 2.0]])
  x = _solve_nnqp(h[None], np.array([[1.0, -1.0, 1.0, -3.0]]))
  np.testing.assert_allclose(x[0], [0.0, 0.5, 0.0, 1.5], atol=1e-7)


def test_nonnegative_qp_matches_brute_force():
  t = 4
  hs, cs = [], []
  for b in range(8):
    # Some full rank, some rank-deficient (plus a ridge), various scales.
    h = _random_gramian(t, t + 2 if b % 2 else 2,
                        ridge=0.0 if b % 2 else 1e-3)
    hs.append(h)
    cs.append(RNG.normal(size=t))
  x = _solve_nnqp(np.stack(hs), np.stack(cs))
  for h, c, xb in zip(hs, cs, x):
    exact = _brute_force_nnqp(h, c)
    assert np.all(xb >= 0)
    # float32 accuracy: relative error ~ machine epsilon x condition number.
    tol = 1e-6 * np.linalg.cond(h) * max(1, np.abs(exact).max())
    np.testing.assert_allclose(xb, exact, atol=tol)


def test_lower_bounded_qp_accurate_on_well_conditioned_t64():
  # min_{w >= u} w^T G w: KKT holds to float32 rounding, and the solution is
  # within 1e-6 (relative) of the exact optimum on the support it found.
  t = 64
  g = _random_gramian(t, 2 * t)
  lower = np.abs(RNG.normal(size=(2, t))) * (RNG.uniform(size=(2, t)) < 0.5)
  lower[0] = np.eye(t)[5]
  lower = lower.astype(np.float32).astype(np.float64)
  solve = jax.jit(jax.vmap(_qp.lower_bounded_qp, in_axes=(None, 0)))
  w = np.asarray(solve(jnp.asarray(g, jnp.float32),
                       jnp.asarray(lower, jnp.float32)), np.float64)
  for u, wb in zip(lower, w):
    assert np.all(wb >= u)
    gw = g @ wb
    assert gw.min() >= -1e-5 * np.abs(gw).max()
    free = wb - u > 1e-7
    exact = u.copy()
    exact[free] = u[free] + np.linalg.solve(
        g[np.ix_(free, free)], -(g @ u)[free])
    assert np.all(exact >= u - 1e-9)            # Still feasible in float64,
    assert (g @ exact)[~free].min(initial=0) >= -1e-7  # and optimal.
    assert np.linalg.norm(wb - exact) <= 1e-6 * np.linalg.norm(exact)


def test_nonnegative_qp_finite_on_singular_inputs():
  one = np.array([1.0, 2.0, -1.0, 0.5])
  opposite = np.array([[1.0, -1, 0, 0], [-1, 1, 0, 0], [0, 0, 0, 0],
                       [0, 0, 0, 0]])
  hs = np.stack([np.zeros((4, 4)), np.outer(one, one), opposite,
                 np.ones((4, 4))])
  cs = np.stack([-np.ones(4), -one, np.array([-1.0, -1.0, 0.0, 1.0]),
                 np.array([-1.0, 0.0, 1.0, 2.0])])
  x = _solve_nnqp(hs, cs)
  assert np.all(np.isfinite(x)) and np.all(x >= 0)
  # A consistent singular problem is still solved: H = 11^T, c = (-1, 0, ..):
  # any x >= 0 with sum(x) = 1 and x_t = 0 where c_t > 0.
  np.testing.assert_allclose(np.ones(4) @ x[3], 1.0, atol=1e-6)
  np.testing.assert_allclose(x[3, 2:], 0.0, atol=1e-7)


@functools.lru_cache(maxsize=None)
def _power(alpha):
  return jax.jit(jax.vmap(
      lambda g, r: _qp.power_allocation(g, alpha, ridge=r)))


def _solve_power(alpha, gs, ridge=None):
  ridge = np.zeros(len(gs)) if ridge is None else ridge
  out = _power(alpha)(jnp.asarray(gs, jnp.float32),
                      jnp.asarray(ridge, jnp.float32))
  return np.asarray(out, np.float64)


@pytest.mark.parametrize("alpha", [1.0, 3.0])
def test_power_allocation_solves_its_equations(alpha):
  # Random well-conditioned Gramians: G w = w^(-1/alpha) to ~1e-5.
  gs = np.stack([_random_gramian(6, 12) for _ in range(4)])
  gs[3] *= 1e-3  # A different scale (the solver itself is not scale-free).
  ridge = np.array([0.0, 0.0, 0.0, 1e-3])
  w = _solve_power(alpha, gs, ridge)
  for g, r, wb in zip(gs, ridge, w):
    assert np.all(wb > 0)
    rhs = wb ** (-1.0 / alpha)
    np.testing.assert_allclose((g + r * np.eye(6)) @ wb, rhs, rtol=2e-5)


def test_power_allocation_orthogonal_closed_form_and_singular():
  # Diagonal G: G_tt w_t = w_t^(-1/alpha) -> w_t = G_tt^(-alpha/(1+alpha)).
  d = np.array([1.0, 4.0, 0.25, 2.0, 9.0, 0.5])
  opposite = np.kron(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.eye(3))
  gs = np.stack([np.diag(d), np.zeros((6, 6)), np.ones((6, 6)), opposite])
  ridge = np.array([0.0, 1e-8, 1e-8, 1e-8])
  for alpha in (1.0, 3.0):
    w = _solve_power(alpha, gs, ridge)
    np.testing.assert_allclose(w[0], d ** (-alpha / (1 + alpha)), rtol=1e-5)
    assert np.all(np.isfinite(w)) and np.all(w > 0)
    # Zero and opposite gradients: bounded by the ridge alone,
    # eps w = w^(-1/alpha), w = eps^(-alpha/(1+alpha)) (equal by symmetry).
    # The ridge is at least one float32 ulp of lambda_max (rounding noise):
    # for the opposite pairs (lambda_max = 2) 2.4e-7 instead of 1e-8.
    np.testing.assert_allclose(w[1], 1e-8 ** (-alpha / (1 + alpha)),
                               rtol=1e-4)
    floor = float(np.finfo(np.float32).eps) * 2.0
    np.testing.assert_allclose(w[3], floor ** (-alpha / (1 + alpha)),
                               rtol=1e-2)
    # All-equal (duplicated) gradients: 6 w = w^(-1/alpha), w equal.
    np.testing.assert_allclose(w[2], 6.0 ** (-alpha / (1 + alpha)), rtol=1e-4)


def test_power_allocation_rejects_bad_alpha():
  with pytest.raises(ValueError, match="alpha"):
    _qp.power_allocation(jnp.eye(2), 0.0)


def test_clip_weights_overflow_safe():
  g = np.array([[4.0, 0.0], [0.0, 1.0]])
  gs = np.stack([g, g, g * 1e36, np.zeros((2, 2))])
  ws = np.array([[1.0, 1.0], [0.1, 0.1], [1e20, 1e20], [1e30, 1e30]])
  clip = jax.jit(jax.vmap(lambda w, g: _qp.clip_weights(w, g, 1.0)))
  out = np.asarray(clip(jnp.asarray(ws, jnp.float32),
                        jnp.asarray(gs, jnp.float32)), np.float64)
  assert np.all(np.isfinite(out))
  # ||J^T w||^2 = 4 + 1 = 5 > 1: scaled by 1 / sqrt(5).
  np.testing.assert_allclose(out[0], np.ones(2) / np.sqrt(5.0), rtol=1e-6)
  np.testing.assert_allclose(out[1], [0.1, 0.1], rtol=1e-7)  # Below: kept.
  # Huge Gramian and weights (w^T G w overflows float32): norm exactly 1.
  np.testing.assert_allclose(np.sqrt(out[2] @ gs[2] @ out[2]), 1.0, rtol=1e-5)
  np.testing.assert_allclose(out[3], [1e30, 1e30], rtol=1e-6)  # Zero G.


# Regression: on the toy benchmark's Pareto set the two task gradients are
# anti-parallel to float32 precision; their float32 Gramian has eigenvalues
# -4e-9 and 0.69 (indefinite by rounding). Newton ran away on it (weights
# 5e19) and w^T G w < 0 disabled the clip (update norms up to 5e15).
REPRO_JAC = np.array([[-0.19899285, -0.00027255394],
                      [0.8087746, 0.0011050203]], np.float32)


def _rounding_indefinite_gramians():
  """Float32 Gramians whose exact eigenvalues include a negative one."""
  rng = np.random.default_rng(7)
  gs = [REPRO_JAC @ REPRO_JAC.T]
  for t in (2, 3, 3):   # Random rank one, minus 1e-9 off its range.
    a = rng.normal(size=t)
    a *= np.sqrt(0.3) / np.linalg.norm(a)
    v = rng.normal(size=t)
    v -= a * (a @ v) / (a @ a)
    v /= np.linalg.norm(v)
    gs.append(np.outer(a, a) - 1e-9 * np.outer(v, v))
  gs = [g.astype(np.float32) for g in gs]
  for g in gs:   # The precondition: indefinite as stored.
    assert np.linalg.eigvalsh(g.astype(np.float64))[0] < 0
  return gs


@pytest.mark.parametrize("alpha", [1.0, 3.0, 0.5])
def test_power_allocation_bounded_on_rounding_indefinite_gramians(alpha):
  p = 0.0 if alpha == 1.0 else 1.0 - 1.0 / alpha
  for g in _rounding_indefinite_gramians():
    t = len(g)
    g = g / np.mean(np.diag(g))
    w = np.asarray(jax.jit(lambda x: _qp.power_allocation(
        x, alpha, ridge=1e-8, iterations=25))(jnp.asarray(g, jnp.float32)),
                   np.float64)
    assert np.all(np.isfinite(w)) and np.all(w > 0), w
    if p >= 0:
      # eps ||w||^2 <= w^T (G_+ + eps I) w = sum w^p <= T^(1-p/2) ||w||^p.
      bound = np.sqrt(t) * 1e-8 ** (-1.0 / (2.0 - p))
      assert np.linalg.norm(w) <= 1.05 * bound
    # Solved on the PSD part: the fixed point holds along its range, and the
    # objective is not below the float64 optimum (no runaway).
    lam, vec = np.linalg.eigh(g.astype(np.float64))
    lam = np.maximum(lam, 0.0) + max(1e-8, float(np.finfo(np.float32).eps)
                                     * lam[-1])
    hess = (vec * lam) @ vec.T
    h = (lambda x: np.sum(np.log(x))) if p == 0 else (
        lambda x: np.sum(x ** p) / p)
    value = 0.5 * w @ hess @ w - h(w)
    w_ref = np.ones(t)
    for _ in range(200):   # Damped Newton in float64.
      grad = hess @ w_ref - w_ref ** (p - 1)
      step = -np.linalg.solve(hess + np.diag((1 - p) * w_ref ** (p - 2)),
                              grad)
      s = 1.0
      while np.any(w_ref + s * step <= 0):
        s /= 2
      w_ref = w_ref + s * step
    best = 0.5 * w_ref @ hess @ w_ref - h(w_ref)
    assert value <= best + 1e-4 * max(1.0, abs(best))


def test_clip_weights_bounds_cancelling_updates():
  # The runaway weights of the old solver on the repro: w^T G w computed
  # from the float32 Gramian is -1.6e31, yet ||J^T w|| is 3.7e13.
  g = REPRO_JAC @ REPRO_JAC.T
  jac = REPRO_JAC.astype(np.float64)
  clip = jax.jit(lambda w, g: _qp.clip_weights(w, g, 1.0))
  for w in ([5.4595590e19, 1.3432833e19], [4027.76, 991.0], [1.0, 0.246]):
    out = clip(jnp.asarray(w, jnp.float32), jnp.asarray(g, jnp.float32))
    assert np.all(np.isfinite(out))
    # The exact norm (float64) and the one computed in float32 both <= 1.
    assert np.linalg.norm(np.asarray(out, np.float64) @ jac) <= 1.0 + 1e-6
    d32 = jnp.tensordot(out, jnp.asarray(REPRO_JAC), axes=1,
                        precision=jax.lax.Precision.HIGHEST)
    assert float(jnp.linalg.norm(d32)) <= 1.0 + 1e-6
  # Zero weights and a zero Gramian stay as they are.
  zero = clip(jnp.zeros(2), jnp.asarray(g, jnp.float32))
  np.testing.assert_array_equal(zero, 0.0)
