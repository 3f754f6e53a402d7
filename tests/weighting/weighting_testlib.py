"""Shared helpers for the weighting tests (imported by plain name)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

import mtl_jax.weighting as weighting

# Hyperparameters for methods that have no usable default.
_FIXED_BASE = np.array([0.5, 1.0, 2.0, 0.25, 3.0])


def make(name, num_tasks, perm=None):
  """Builds method ``name`` for ``num_tasks`` tasks (tasks permuted by perm)."""
  if name == "fixed":
    values = _FIXED_BASE[:num_tasks]
    if perm is not None:
      values = values[np.asarray(perm)]
    return weighting.get("fixed", weights=values)
  return weighting.get(name)


@functools.lru_cache(maxsize=None)
def build(name, num_tasks, perm=None):
  """``(method, jit(method.update))``, cached so each compiles once per file.

  ``perm`` must be a tuple (hashable) or None.
  """
  method = make(name, num_tasks, perm)
  return method, jax.jit(method.update)


def gramian_of(grads):
  grads = jnp.asarray(grads, jnp.float32)
  return grads @ grads.T


def extras_for(method, step, gramian=None, key=None):
  """The keyword extras the trainer would pass."""
  extras = {"step": jnp.int32(step),
            "key": jax.random.fold_in(jax.random.key(0), step)
            if key is None else key}
  if "gramian" in method.needs:
    extras["gramian"] = gramian
  return extras


class NumpyAdam:
  """Textbook Adam (Kingma & Ba, 2015) in float64 numpy, for hand checks.

  ``weight_decay`` adds ``weight_decay * params`` to the gradient first (L2
  regularisation, as torch's ``Adam(weight_decay=...)``).
  """

  def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
    self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
    self.weight_decay = weight_decay
    self.m = self.v = 0.0
    self.t = 0

  def step(self, params, grad):
    grad = np.asarray(grad, np.float64) + self.weight_decay * params
    self.t += 1
    self.m = self.b1 * self.m + (1 - self.b1) * grad
    self.v = self.b2 * self.v + (1 - self.b2) * grad ** 2
    m_hat = self.m / (1 - self.b1 ** self.t)
    v_hat = self.v / (1 - self.b2 ** self.t)
    return params - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def scan_updates(method, losses_seq, gramian_seq=None):
  """Runs ``method`` over a sequence of losses in one compiled ``lax.scan``.

  Returns ``(weights [N, T], states)`` with every state stacked on axis 0.
  """
  losses_seq = jnp.asarray(losses_seq, jnp.float32)
  num_tasks = losses_seq.shape[1]
  if gramian_seq is None:
    gramian_seq = jnp.broadcast_to(jnp.eye(num_tasks),
                                   (losses_seq.shape[0], num_tasks, num_tasks))

  def body(state, inputs):
    losses, gramian = inputs
    weights, state = method.update(losses, state, gramian=gramian,
                                   key=jax.random.key(0), step=0)
    return state, (weights, state)

  @jax.jit
  def run(state, xs):
    return jax.lax.scan(body, state, xs)[1]

  return run(method.init(num_tasks),
             (losses_seq, jnp.asarray(gramian_seq, jnp.float32)))
