"""MoCo: tracked task gradients and projected-gradient MGDA weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation

PARAMS = {"w": jnp.zeros(2)}


def _run(agg, grads_seq, losses=None):
  """Runs ``update`` over a [S, T, 2] sequence in one jitted scan."""
  def body(state, g):
    d, state = agg.update({"w": g}, state, losses=losses, step=0)
    return state, (d["w"], state.lam)
  state = agg.init(grads_seq.shape[1], PARAMS)
  state, (ds, lams) = jax.jit(lambda s, x: jax.lax.scan(body, s, x))(
      state, jnp.asarray(grads_seq, jnp.float32))
  return state, np.asarray(ds, np.float64), np.asarray(lams, np.float64)


def test_hand_computed_two_steps():
  # Defaults beta = 0.5, gamma = 0.1, both decaying as 1/sqrt(k), rho = 0.
  # Step 1 (g1 = (1, 0), g2 = (0, 1)): y = 0.5 g, YY^T = diag(.25, .25),
  # lam = P(0.5 - 0.1 * 0.125) = (0.5, 0.5), d = (0.25, 0.25).
  # Step 2 (g1 = (2, 0), g2 = (0, 1)): b = 0.5 / sqrt(2), c = 0.1 / sqrt(2),
  # y1 = 0.5 + b (2 - 0.5), y2 = 0.5 + b (1 - 0.5), lam' = 0.5 - c y_t^2 0.5,
  # then lam = lam' + (1 - sum lam') / 2 (both stay positive), d = lam o y.
  seq = np.array([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 1.0]]])
  state, ds, lams = _run(aggregation.get("moco"), seq)
  np.testing.assert_allclose(lams[0], [0.5, 0.5], atol=1e-7)
  np.testing.assert_allclose(ds[0], [0.25, 0.25], atol=1e-7)
  b, c = 0.5 / np.sqrt(2), 0.1 / np.sqrt(2)
  y = np.array([0.5 + b * 1.5, 0.5 + b * 0.5])
  lam = 0.5 - c * y ** 2 * 0.5
  lam += (1 - lam.sum()) / 2
  np.testing.assert_allclose(lams[1], lam, rtol=1e-6)
  np.testing.assert_allclose(ds[1], lam * y, rtol=1e-6)
  np.testing.assert_allclose(state.y["w"], np.diag(y), rtol=1e-6)
  assert int(state.count) == 2


def test_converges_to_the_min_norm_point_with_exact_gradients():
  # beta = 1 tracks exactly; constant steps: projected gradient on the MGDA
  # problem. g1 = (1, 0), g2 = (0, 2): min w1^2 + 4 w2^2 on the simplex at
  # w = (0.8, 0.2), d = (0.8, 0.4).
  agg = aggregation.get("moco", beta=1.0, beta_sigma=0.0, gamma=0.2,
                        gamma_sigma=0.0)
  seq = np.tile(np.array([[1.0, 0.0], [0.0, 2.0]]), (200, 1, 1))
  _, ds, lams = _run(agg, seq)
  np.testing.assert_allclose(lams[-1], [0.8, 0.2], atol=1e-5)
  np.testing.assert_allclose(ds[-1], [0.8, 0.4], atol=1e-5)
  assert np.all(lams >= 0) and np.allclose(lams.sum(1), 1.0, atol=1e-6)


def test_tracking_averages_noisy_gradients():
  # y is a decaying-step average: with zero-mean noise around fixed means
  # it ends close to the means.
  rng = np.random.default_rng(6)
  means = np.array([[1.0, -1.0], [0.5, 2.0]])
  seq = means + 0.5 * rng.normal(size=(400, 2, 2))
  state, _, _ = _run(aggregation.get("moco", beta_sigma=0.8), seq)
  np.testing.assert_allclose(state.y["w"], means, atol=0.15)


def test_contract_weights_none_needs_params_and_losses():
  agg = aggregation.get("moco", normalize_by_loss=True)
  assert agg.weights is None
  with pytest.raises(ValueError, match="params"):
    agg.init(2)
  state = agg.init(2, PARAMS)
  grads = {"w": jnp.array([[3.0, 4.0], [0.0, 0.5]])}
  update = jax.jit(agg.update)
  with pytest.raises(ValueError, match="losses"):
    update(grads, state)
  # Gradients rescaled to norm loss_t before tracking: y = 0.5 * that.
  _, state = update(grads, state, losses=jnp.array([2.0, 1.0]))
  np.testing.assert_allclose(state.y["w"], [[0.6, 0.8], [0.0, 0.5]],
                             rtol=1e-6)


@pytest.mark.parametrize("hparams,name", [
    (dict(beta=0.0), "beta"), (dict(beta=1.5), "beta"),
    (dict(beta_sigma=-1.0), "beta_sigma"), (dict(gamma=0.0), "gamma"),
    (dict(gamma_sigma=-0.5), "gamma_sigma"), (dict(rho=-1.0), "rho")])
def test_out_of_domain_hyperparameters_raise(hparams, name):
  with pytest.raises(ValueError, match=name):
    aggregation.get("moco", **hparams)


def _moco_reference(seq, softmax, beta=0.5, beta_sigma=0.5, gamma=0.1,
                    gamma_sigma=0.5, rho=0.0):
  """Fernando et al. (2023), Algorithm 1, in float64 numpy; ``softmax``
  replaces the simplex projection by LibMTL's softmax."""
  def project(v):  # Sort-based Euclidean projection onto the simplex.
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    rho_ = np.nonzero(u - css / np.arange(1, len(v) + 1) > 0)[0][-1]
    return np.maximum(v - css[rho_] / (rho_ + 1), 0.0)

  t = seq.shape[1]
  y = np.zeros(seq.shape[1:])
  lam = np.full(t, 1.0 / t)
  out = []
  for k, g in enumerate(seq, start=1):
    y = y - beta / k**beta_sigma * (y - g)
    v = lam - gamma / k**gamma_sigma * (y @ y.T + rho * np.eye(t)) @ lam
    lam = np.exp(v - v.max()) / np.exp(v - v.max()).sum() if softmax \
        else project(v)
    out.append((lam.copy(), lam @ y))
  return out


@pytest.mark.parametrize("lambda_update", ["project", "softmax"])
def test_matches_the_reference_over_steps(lambda_update):
  rng = np.random.default_rng(5)
  seq = rng.normal(size=(8, 3, 2)) * np.array([3.0, 1.0, 0.2])[:, None]
  seq = seq.astype(np.float32).astype(np.float64)
  agg = aggregation.get("moco", gamma=0.5, rho=0.1,
                        lambda_update=lambda_update)
  _, ds, lams = _run(agg, seq)
  expected = _moco_reference(seq, lambda_update == "softmax", gamma=0.5,
                             rho=0.1)
  for (lam, d), lam_ours, d_ours in zip(expected, lams, ds):
    np.testing.assert_allclose(lam_ours, lam, atol=1e-6)
    np.testing.assert_allclose(d_ours, d, atol=1e-5)
  # The two updates really differ on this sequence.
  other = _moco_reference(seq, lambda_update != "softmax", gamma=0.5, rho=0.1)
  assert np.abs(other[-1][0] - lams[-1]).max() > 1e-3


def test_lambda_update_is_validated():
  with pytest.raises(ValueError, match="lambda_update"):
    aggregation.get("moco", lambda_update="exp")
