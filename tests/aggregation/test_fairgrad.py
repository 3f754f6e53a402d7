"""FairGrad: the alpha-fair allocation G w = w^(-1/alpha)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation

RNG = np.random.default_rng(5)
BATCH = 6


@functools.lru_cache(maxsize=None)
def _weights_fn(**hparams):
  agg = aggregation.get("fairgrad", **hparams)
  return jax.jit(jax.vmap(
      lambda g: agg.weights(g, agg.init(g.shape[0]), step=0)[0]))


def _weights(jac, **hparams):
  jac = np.asarray(jac, np.float64)
  gram = np.einsum("bip,bjp->bij", jac, jac)
  b = len(gram)  # Pad to BATCH so every call with this T shares a compile.
  pad = np.concatenate([gram] + [gram[:1]] * (BATCH - b))
  out = _weights_fn(**hparams)(jnp.asarray(pad, jnp.float32))
  return np.asarray(out, np.float64)[:b], gram


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_hand_computed_orthogonal(alpha):
  # Orthogonal gradients: G diagonal, G_tt w_t = w_t^(-1/alpha), so
  # w_t = G_tt^(-alpha/(1+alpha)) = ||g_t||^(-2 alpha/(1+alpha)).
  norms = np.array([1.0, 2.0, 0.5, 3.0])
  w, _ = _weights(np.diag(norms)[None], alpha=alpha, max_norm=0.0)
  np.testing.assert_allclose(w[0], norms ** (-2 * alpha / (1 + alpha)),
                             rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_fairness_equations_hold_on_random_gramians(alpha):
  jac = RNG.normal(size=(BATCH, 4, 10)) * RNG.uniform(
      0.01, 100.0, size=(BATCH, 1, 1))
  w, gram = _weights(jac, alpha=alpha, max_norm=0.0)
  for g, wb, jb in zip(gram, w, jac):
    assert np.all(wb > 0)
    rhs = wb ** (-1.0 / alpha)
    np.testing.assert_allclose(g @ wb, rhs, rtol=1e-4)
    assert np.all(jb @ (wb @ jb) > 0)  # Every task improves.
  # Scaling G by c scales w by c^(-alpha / (1 + alpha)), exactly.
  w_big, _ = _weights(jac * 1e3, alpha=alpha, max_norm=0.0)
  np.testing.assert_allclose(w_big, w * 1e6 ** (-alpha / (1 + alpha)),
                             rtol=1e-4)


def test_max_norm_clips_the_update():
  jac = RNG.normal(size=(BATCH, 4, 10)) * np.array(
      [1e-3, 0.1, 1.0, 10.0, 100.0, 1e4])[:, None, None]
  w_free, gram = _weights(jac, alpha=2.0, max_norm=0.0)
  w, _ = _weights(jac, alpha=2.0, max_norm=1.0)
  for g, wf, wb in zip(gram, w_free, w):
    free_norm = np.sqrt(wf @ g @ wf)
    np.testing.assert_allclose(wb, wf * min(1.0, 1.0 / free_norm), rtol=1e-5)


@pytest.mark.parametrize("hparams,name", [
    (dict(alpha=0.0), "alpha"), (dict(alpha=-2.0), "alpha"),
    (dict(max_norm=-1.0), "max_norm"), (dict(reg_eps=0.0), "reg_eps"),
    (dict(norm_eps=0.0), "norm_eps"), (dict(iterations=0), "iterations")])
def test_out_of_domain_hyperparameters_raise(hparams, name):
  with pytest.raises(ValueError, match=name):
    aggregation.get("fairgrad", **hparams)
