"""The DSelect-k gate: a differentiable gate that selects at most k experts.

Hazimeh, Zhao, Chowdhery, Sathiamoorthy, Chen, Mazumder, Hong, Chi,
"DSelect-k: Differentiable Selection in the Mixture of Experts with
Applications to Multi-Task Learning", NeurIPS 2021, arXiv:2106.03760.

With ``n`` experts and ``m = ceil(log2 n)`` binary digits, a *single-expert
selector* with logits ``z in R^m`` puts weight

    r(z)_c = prod_{l=1..m} ( S(z_l) if bit_l(c) = 1 else 1 - S(z_l) )

on each binary code ``c in {0, ..., 2^m - 1}``, where ``S`` is the smooth-step

    S(t) = 0                              if t <= -gamma / 2
           1                              if t >=  gamma / 2
           -2 t^3 / gamma^3 + 3 t / (2 gamma) + 1/2   otherwise.

``r(z)`` is on the simplex, and once every ``|z_l| >= gamma / 2`` it is one-hot:
the selector picks exactly one expert. The gate mixes ``k`` selectors with
softmax weights ``a = softmax(w)``: ``g = sum_i a_i r(z_i)``, so after the
smooth-steps saturate at most ``k`` experts have non-zero weight.

Two gates, as in the authors' implementation (``conditioning``):

* ``"example"`` (default): ``z = Z x + z_0`` and ``w = W x + w_0``, parameters
  ``z`` and ``w`` (dense layers);
* ``"task"``: input-independent logits, one selection per task (the paper's
  static gate), parameters ``z_logits [k, m]`` and ``w_logits [k]``.

Codes ``c >= n`` (when ``n`` is not a power of two) are mapped to expert
``c mod n``, which keeps ``g`` on the simplex without the paper's extra
"unreachable codes" loss term. The paper's entropy regulariser, which speeds
up saturation, is the penalty ``dselect_entropy``
(:mod:`mtl_jax.penalties.dselect_entropy`); it is a function of the parameters
only for task-conditioned gates (an example-conditioned gate's selectors
depend on the input).

The gate is a building block: :class:`mtl_jax.models.dselect_k.DSelectKMoE`
is the paper's multi-task model (MMoE with a DSelect-k gate per task), and every
mixture-of-experts architecture here takes ``gate='dselect_k'``
(:func:`mtl_jax.models.experts.build_gate`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mtl_jax.validators import choice, positive, positive_int

CONDITIONINGS = ("example", "task")


def smooth_step(t: jax.Array, gamma: float = 1.0) -> jax.Array:
  """The cubic smooth-step ``S(t)``: 0 below ``-gamma/2``, 1 above ``gamma/2``."""
  cubic = -2.0 / gamma**3 * t**3 + 1.5 / gamma * t + 0.5
  return jnp.where(t <= -gamma / 2, 0.0, jnp.where(t >= gamma / 2, 1.0, cubic))


def code_matrices(num_experts: int) -> tuple[np.ndarray, np.ndarray]:
  """Bits ``[2^m, m]`` of every code (most significant first) and the map
  ``[2^m, n]`` from code ``c`` to expert ``c mod n``."""
  m = max(1, math.ceil(math.log2(num_experts)))
  codes = np.arange(2**m)
  bits = (codes[:, None] >> np.arange(m - 1, -1, -1)) & 1
  to_expert = np.eye(num_experts, dtype=np.float32)[codes % num_experts]
  return bits.astype(bool), to_expert


def code_weights(z: jax.Array, gamma: float = 1.0) -> jax.Array:
  """The single-expert selector ``r(z)`` over all ``2^m`` binary codes.

  Args:
    z: selector logits ``[..., m]``.
    gamma: smooth-step width.

  Returns:
    ``[..., 2^m]``, each row on the simplex: ``prod_l S(z_l)`` or
    ``1 - S(z_l)`` as bit ``l`` (most significant first) of the code is 1 or 0.
  """
  bits, _ = code_matrices(2 ** z.shape[-1])
  s = smooth_step(z[..., None, :], gamma)
  return jnp.prod(jnp.where(bits, s, 1.0 - s), axis=-1)


def _uniform(scale: float):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)
  return init


class DSelectKGate(nnx.Module):
  """DSelect-k gate: ``[B, in] -> [B, n]`` mixture weights with <= k non-zeros.

  Args:
    in_features: input size.
    num_experts: ``n``.
    k: number of single-expert selectors (the maximum number of experts).
    gamma: smooth-step width.
    conditioning: ``"example"`` (logits from the input) or ``"task"``
      (input-independent logits ``z_logits``, ``w_logits``).
    rngs: initialisation keys. As in the paper, ``z`` starts in
      ``U(-gamma/100, gamma/100)`` (inside the smooth region) and ``w`` in
      ``U(-0.05, 0.05)``.
  """

  def __init__(self, in_features: int, num_experts: int, *, k: int = 2,
               gamma: float = 1.0, conditioning: str = "example", rngs: nnx.Rngs):
    choice(conditioning, "DSelectKGate: conditioning", CONDITIONINGS)
    k = positive_int(k, "DSelectKGate: k")
    gamma = positive(gamma, "DSelectKGate: gamma")
    self.k, self.gamma, self.num_experts = k, gamma, num_experts
    self.num_bits = code_matrices(num_experts)[0].shape[1]
    self.conditioning = conditioning
    z_init, w_init = _uniform(gamma / 100), _uniform(0.05)
    if conditioning == "task":
      self.z_logits = nnx.Param(z_init(rngs.params(), (k, self.num_bits)))
      self.w_logits = nnx.Param(w_init(rngs.params(), (k,)))
      return
    self.z = nnx.Linear(in_features, k * self.num_bits, kernel_init=z_init,
                        bias_init=z_init, rngs=rngs)
    self.w = nnx.Linear(in_features, k, kernel_init=w_init, bias_init=w_init,
                        rngs=rngs)

  def logits(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Selector logits ``z [B, k, m]`` and combiner logits ``w [B, k]``."""
    b = x.shape[0]
    if self.conditioning == "task":
      return (jnp.broadcast_to(self.z_logits[...], (b, self.k, self.num_bits)),
              jnp.broadcast_to(self.w_logits[...], (b, self.k)))
    return self.z(x).reshape(b, self.k, self.num_bits), self.w(x)

  def _per_expert(self, z: jax.Array) -> jax.Array:
    """``r(z)`` summed over the codes of each expert: ``[..., m] -> [..., n]``."""
    _, to_expert = code_matrices(self.num_experts)
    return code_weights(z, self.gamma) @ to_expert

  def selectors(self, x: jax.Array) -> jax.Array:
    """The single-expert selectors ``r(z_i)``: ``[B, k, n]``, rows on the simplex."""
    return self._per_expert(self.logits(x)[0])

  def __call__(self, x: jax.Array) -> jax.Array:
    """Mixture weights ``[B, n]`` on the simplex."""
    z, w = self.logits(x)
    return jnp.einsum("bk,bkn->bn", jax.nn.softmax(w, axis=-1), self._per_expert(z))
