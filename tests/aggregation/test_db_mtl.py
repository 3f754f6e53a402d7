"""DB-MTL (exact, gradient EMA) against a float64 numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation

RNG = np.random.default_rng(7)


def _reference(jacs, losses, beta, beta_sigma=0.0, eps=1e-8):
  """Lin et al. (2023) / LibMTL DB_MTL.backward, in float64 numpy."""
  buf = np.zeros_like(jacs[0])
  out = []
  for k, (jac, loss) in enumerate(zip(jacs, losses), start=1):
    g = jac / (loss[:, None] + eps)  # grad log(L_t + eps).
    buf = g + beta / k**beta_sigma * (buf - g)
    norms = np.linalg.norm(buf, axis=1)
    alpha = norms.max() / (norms + eps)
    out.append(alpha @ buf)
  return out


def _run(jacs, losses, **hparams):
  agg = aggregation.get("db_mtl", **hparams)
  p = jacs.shape[-1]
  state = agg.init(jacs.shape[1], {"w": jnp.zeros((p // 2,)),
                                   "b": jnp.zeros((p - p // 2,))})
  step = jax.jit(agg.update)
  out = []
  for jac, loss in zip(jacs, losses):
    grads = {"w": jnp.asarray(jac[:, :p // 2], jnp.float32),
             "b": jnp.asarray(jac[:, p // 2:], jnp.float32)}
    d, state = step(grads, state, losses=jnp.asarray(loss, jnp.float32))
    out.append(np.concatenate([np.asarray(d["w"], np.float64),
                               np.asarray(d["b"], np.float64)]))
  return out, state


@pytest.mark.parametrize("beta,beta_sigma", [(0.9, 0.0), (0.0, 0.0),
                                             (0.9, 0.5)])
def test_matches_the_papers_gradient_ema_over_steps(beta, beta_sigma):
  steps, t, p = 6, 3, 9
  jacs = RNG.normal(size=(steps, t, p)) * np.array([1.0, 10.0, 0.1])[:, None]
  losses = np.exp(RNG.uniform(-2, 2, size=(steps, t)))
  jacs32 = jacs.astype(np.float32).astype(np.float64)
  losses32 = losses.astype(np.float32).astype(np.float64)
  ours, state = _run(jacs, losses, beta=beta, beta_sigma=beta_sigma)
  expected = _reference(jacs32, losses32, beta, beta_sigma)
  for d, e in zip(ours, expected):
    np.testing.assert_allclose(d, e, rtol=1e-5, atol=1e-6 * np.abs(e).max())
  assert int(state.count) == steps


def test_fixed_jacobian_differs_from_the_norm_ema_approximation():
  # With a fixed Jacobian the EMA buffer is (1 - 0.9^k) g: the direction
  # ramps up, which the norm-only weighting (current gradient) cannot do.
  jac = RNG.normal(size=(3, 5))
  losses = np.ones(3)
  ours, _ = _run(np.stack([jac] * 3), np.stack([losses] * 3), beta=0.9)
  norms = np.linalg.norm(jac, axis=1)
  full = (norms.max() / norms) @ jac
  for k, d in enumerate(ours, start=1):
    np.testing.assert_allclose(d, (1 - 0.9**k) * full, rtol=1e-5,
                               atol=1e-6)


def test_needs_params_and_losses():
  agg = aggregation.get("db_mtl")
  with pytest.raises(ValueError, match="params"):
    agg.init(2)
  state = agg.init(2, {"w": jnp.zeros(3)})
  with pytest.raises(ValueError, match="losses"):
    agg.update({"w": jnp.ones((2, 3))}, state)
  assert agg.weights is None  # Needs the full Jacobian (jacobian engine).
  with pytest.raises(ValueError, match="beta"):
    aggregation.get("db_mtl", beta=1.0)
