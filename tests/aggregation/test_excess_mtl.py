"""ExcessMTL (per-coordinate AdaGrad excess risk) against float64 numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation

RNG = np.random.default_rng(11)


def _reference(jacs, step_size, adagrad_eps=1e-7, eps=1e-8):
  """He et al. (2024), the authors' ExcessMTL.backward, float64 numpy."""
  t = jacs.shape[1]
  sums = np.zeros(jacs.shape[1:])
  w = np.ones(t)
  initial = None
  out = []
  for jac in jacs:
    sums += jac**2
    risk = np.sum(jac**2 / np.sqrt(sums + adagrad_eps), axis=1)
    if initial is None:
      initial = risk
    else:
      w = w * np.exp(step_size * risk / (initial + eps))
      w = w / w.sum() * t
    out.append((w.copy(), w @ jac))
  return out


def test_matches_the_per_coordinate_adagrad_estimate_over_steps():
  steps, t, p = 6, 3, 8
  # Profiles that change over time: the scalar proxy cannot follow them.
  jacs = RNG.normal(size=(steps, t, p)) * np.exp(
      RNG.uniform(-2, 2, size=(steps, t, p)))
  jacs = jacs.astype(np.float32).astype(np.float64)
  agg = aggregation.get("excess_mtl", step_size=0.5)
  state = agg.init(t, {"a": jnp.zeros((3,)), "b": jnp.zeros((p - 3,))})
  step = jax.jit(agg.update)
  expected = _reference(jacs, 0.5)
  for jac, (w, d) in zip(jacs, expected):
    grads = {"a": jnp.asarray(jac[:, :3], jnp.float32),
             "b": jnp.asarray(jac[:, 3:], jnp.float32)}
    out, state = step(grads, state)
    np.testing.assert_allclose(np.exp(np.asarray(state.log_weights)), w,
                               rtol=1e-5)
    ours = np.concatenate([np.asarray(out["a"]), np.asarray(out["b"])])
    np.testing.assert_allclose(ours, d, rtol=1e-4,
                               atol=1e-5 * np.abs(d).max())
  # The scalar (Gramian) proxy differs on these changing profiles.
  proxy = _reference(np.linalg.norm(jacs, axis=2, keepdims=True), 0.5)
  assert np.abs(proxy[-1][0] - expected[-1][0]).max() > 1e-3


def test_needs_params():
  with pytest.raises(ValueError, match="params"):
    aggregation.get("excess_mtl").init(2)
  assert aggregation.get("excess_mtl").weights is None
