"""Setup shared by the Gramian-based aggregator tests (UPGrad, DualProj, Nash-MTL, FairGrad)."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax import aggregation

BATCH = 6


@functools.lru_cache(maxsize=None)
def weights_fn(name, **hparams):
  """Jitted, vmapped ``weights`` of aggregator ``name`` from a fresh state:
  [B, T, T] Gramians -> [B, T]."""
  agg = aggregation.get(name, **hparams)
  return jax.jit(jax.vmap(
      lambda g: agg.weights(g, agg.init(g.shape[0]), step=0)[0]))


def weights(name, jac, **hparams):
  """Weights of a batch of Jacobians [B, T, P] (float64 out) and their Gramians."""
  jac = np.asarray(jac, np.float64)
  gram = np.einsum("bip,bjp->bij", jac, jac)
  b = len(gram)  # Pad to BATCH so every call with this T shares a compile.
  pad = np.concatenate([gram] + [gram[:1]] * (BATCH - b))
  out = weights_fn(name, **hparams)(jnp.asarray(pad, jnp.float32))
  return np.asarray(out, np.float64)[:b], gram


def update(name, jac, **hparams):
  """One jitted ``update`` and ``weights`` of aggregator ``name`` on a single
  Jacobian [T, P]: (update [P], weights [T]) in float64, and the new state."""
  agg = aggregation.get(name, **hparams)
  grads = {"w": jnp.asarray(jac, jnp.float32)}
  d, state = jax.jit(agg.update)(grads, agg.init(len(jac)))
  w, _ = jax.jit(agg.weights)(aggregation.gramian(grads), agg.init(len(jac)))
  return np.asarray(d["w"], np.float64), np.asarray(w, np.float64), state


def project_onto_dual_cone(jac, g):
  """argmin_{J v >= 0} ||v - g||: enumerate active constraint sets (float64)."""
  best, best_dist = None, np.inf
  for mask in itertools.product([False, True], repeat=len(jac)):
    act = np.array(mask)
    v = g.copy()
    if act.any():
      js = jac[act]  # v = g + J_S^T lam, lam >= 0, J_S v = 0.
      lam = np.linalg.lstsq(js @ js.T, -js @ g, rcond=None)[0]
      if np.any(lam < -1e-12):
        continue
      v = g + js.T @ lam
    if np.all(jac @ v >= -1e-9) and np.linalg.norm(v - g) < best_dist:
      best, best_dist = v, np.linalg.norm(v - g)
  return best


def rank_one_gramians_with_negative_eigenvalue():
  """BATCH float32 Gramians G = a a^T - 1e-9 v v^T (T = 3, trace 0.3) whose
  smallest eigenvalue rounds negative, and their vectors a ([BATCH, 3]): for
  J = a b^T with a unit b, ||J^T w|| = |a . w|."""
  rng = np.random.default_rng(7)
  grams, jacs = [], []
  for t in (3,) * 8:
    a = rng.normal(size=t)
    a *= np.sqrt(0.3) / np.linalg.norm(a)
    v = rng.normal(size=t)
    v -= a * (a @ v) / (a @ a)
    v /= np.linalg.norm(v)
    g = (np.outer(a, a) - 1e-9 * np.outer(v, v)).astype(np.float32)
    if np.linalg.eigvalsh(g.astype(np.float64))[0] < 0:
      grams.append(g)
      jacs.append(a)
  assert len(grams) >= 4
  return (np.stack(grams[:BATCH - 1] * 2)[:BATCH],
          np.stack(jacs[:BATCH - 1] * 2)[:BATCH])
