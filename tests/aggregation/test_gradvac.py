"""GradVac: adaptive cosine targets, tracked on the Gramian."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation
from mtl_jax.aggregation.gradvac import GradVacState, vaccinate
from mtl_jax.aggregation.pcgrad import projection_coefficients

RNG = np.random.default_rng(2)


@functools.lru_cache(maxsize=None)
def _vaccinate_fn(beta):
  return jax.jit(jax.vmap(lambda g, tg, o: vaccinate(g, tg, o, beta)))


def _reference(jac, targets, orders, beta):
  """GradVac on explicit vectors (numpy, float64)."""
  out, new_targets = [], targets.copy()
  for i in range(len(jac)):
    g = jac[i].copy()
    for j in orders[i]:
      if j == i:
        continue
      phi = g @ jac[j] / (np.linalg.norm(g) * np.linalg.norm(jac[j]))
      tgt = targets[i, j]
      if phi < tgt:
        g = g + (np.linalg.norm(g) * (tgt * np.sqrt(1 - phi**2)
                                      - phi * np.sqrt(1 - tgt**2))
                 / (np.linalg.norm(jac[j]) * np.sqrt(1 - tgt**2))) * jac[j]
      new_targets[i, j] = (1 - beta) * tgt + beta * phi
    out.append(g)
  return np.array(out), new_targets


def test_hand_computed_orthogonal_pair():
  # g1 = e1, g2 = e2 (cos 0) with target 0.5: coefficient
  # (0.5 * 1 - 0) / (1 * sqrt(0.75)) = 1/sqrt(3) each way.
  agg = aggregation.get("gradvac", beta=0.1)
  state = GradVacState(targets=jnp.full((2, 2), 0.5))
  w, new = jax.jit(agg.weights)(jnp.eye(2), state, key=jax.random.key(0))
  np.testing.assert_allclose(w, np.full(2, 1 + 1 / np.sqrt(3)), atol=1e-6)
  # EMA with the cosine measured before the adjustment: 0.9 * 0.5 + 0.1 * 0.
  np.testing.assert_allclose(new.targets[0, 1], 0.45, atol=1e-6)
  np.testing.assert_allclose(new.targets[1, 0], 0.45, atol=1e-6)


def test_two_tasks_permutation_equivariant():
  # For T = 2 the visiting order is irrelevant: swapping the tasks (and the
  # state) swaps the weights and the new targets, whatever the key.
  agg = aggregation.get("gradvac", beta=0.1)
  fn = jax.jit(agg.weights)
  jac = np.array([[1.0, 0.2, -1.0], [-0.5, 1.0, 0.3]])
  targets = jnp.array([[0.0, 0.3], [0.6, 0.0]])
  w, new = fn(jnp.asarray(jac @ jac.T, jnp.float32), GradVacState(targets),
              key=jax.random.key(0))
  swap = jac[::-1]
  w_p, new_p = fn(jnp.asarray(swap @ swap.T, jnp.float32),
                  GradVacState(targets[::-1, ::-1]), key=jax.random.key(5))
  np.testing.assert_allclose(w_p, np.asarray(w)[::-1], atol=1e-6)
  np.testing.assert_allclose(new_p.targets, np.asarray(new.targets)[::-1, ::-1],
                             atol=1e-6)


def test_cosine_reaches_target():
  jac = RNG.normal(size=(16, 2, 5))
  gram = np.einsum("bip,bjp->bij", jac, jac)
  cos = gram[:, 0, 1] / np.sqrt(gram[:, 0, 0] * gram[:, 1, 1])
  target = np.clip(cos + RNG.uniform(0.1, 0.5, size=16), -0.9, 0.95)
  targets = np.broadcast_to(target[:, None, None], (16, 2, 2)).copy()
  orders = jnp.broadcast_to(jnp.arange(2), (16, 2, 2))
  coef, _ = _vaccinate_fn(0.01)(jnp.asarray(gram, jnp.float32),
                                jnp.asarray(targets, jnp.float32), orders)
  adjusted = np.einsum("bik,bkp->bip", np.asarray(coef, np.float64), jac)
  for i, j in ((0, 1), (1, 0)):
    norms = (np.linalg.norm(adjusted[:, i], axis=1)
             * np.linalg.norm(jac[:, j], axis=1))
    got = np.einsum("bp,bp->b", adjusted[:, i], jac[:, j]) / norms
    np.testing.assert_allclose(got, target, atol=1e-4)


def test_matches_explicit_vectors_three_tasks():
  jac = RNG.normal(size=(16, 3, 4))
  targets = RNG.uniform(-0.3, 0.6, size=(16, 3, 3))
  orders = np.array([[RNG.permutation(3) for _ in range(3)] for _ in range(16)])
  gram = jnp.asarray(np.einsum("bip,bjp->bij", jac, jac), jnp.float32)
  coef, new = _vaccinate_fn(0.01)(gram, jnp.asarray(targets, jnp.float32),
                                  jnp.asarray(orders))
  for b in range(16):
    expected, expected_targets = _reference(jac[b], targets[b], orders[b], 0.01)
    np.testing.assert_allclose(np.asarray(coef[b], np.float64) @ jac[b],
                               expected, atol=1e-4)
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(np.asarray(new[b])[off], expected_targets[off],
                               atol=1e-5)


def test_zero_targets_are_pcgrad():
  jac = RNG.normal(size=(16, 3, 4))
  jac[:, 1] -= jac[:, 0]
  orders = jnp.broadcast_to(jnp.arange(3), (16, 3, 3))
  gram = jnp.asarray(np.einsum("bip,bjp->bij", jac, jac), jnp.float32)
  coef, _ = _vaccinate_fn(0.01)(gram, jnp.zeros((16, 3, 3)), orders)
  expected = jax.jit(jax.vmap(projection_coefficients))(gram, orders)
  np.testing.assert_allclose(coef, expected, atol=1e-5)


def test_state_is_updated():
  agg = aggregation.get("gradvac", beta=0.5)
  jac = jnp.array([[1.0, 0.0], [1.0, 1.0]])
  _, state = jax.jit(agg.weights)(jac @ jac.T, agg.init(2), step=0)
  # 0.5 * 0 + 0.5 * cos(pi / 4); no adjustment (cos > 0 = target).
  np.testing.assert_allclose(state.targets[0, 1], 0.5 * np.cos(np.pi / 4),
                             atol=1e-6)
  assert state.targets.shape == (2, 2) and state.targets.dtype == jnp.float32


def test_errors():
  with pytest.raises(ValueError, match="beta"):
    aggregation.get("gradvac", beta=1.5)
  with pytest.raises(ValueError, match="beta"):
    aggregation.get("gradvac", beta=-0.1)
  with pytest.raises(ValueError, match="reduction"):
    aggregation.get("gradvac", reduction="max")
