"""DSelect-k: a differentiable gate that selects at most k experts.

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
smooth-steps saturate at most ``k`` experts have non-zero weight. Here the gate
is example-conditioned: ``z = Z x + z_0`` and ``w = W x + w_0``.

Codes ``c >= n`` (when ``n`` is not a power of two) are mapped to expert
``c mod n``, which keeps ``g`` on the simplex without the paper's extra
"unreachable codes" loss term. The entropy regulariser of the paper, which
speeds up saturation, is not part of the model (models return predictions
only).

:class:`DSelectKMoE` is the paper's multi-task model: MMoE with a DSelect-k
gate per task (``arch='dselect_k'``); any MoE model here takes
``gate='dselect_k'`` as well.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mtl_jax.models.mmoe import MMoE


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


def _uniform(scale: float):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)
  return init


class DSelectKGate(nnx.Module):
  """Example-conditioned DSelect-k gate: ``[B, in] -> [B, n]`` with <= k non-zeros.

  Args:
    in_features: input size.
    num_experts: ``n``.
    k: number of single-expert selectors (the maximum number of experts).
    gamma: smooth-step width.
    rngs: initialisation keys. As in the paper, ``z`` starts in
      ``U(-gamma/100, gamma/100)`` (inside the smooth region) and ``w`` in
      ``U(-0.05, 0.05)``.
  """

  def __init__(self, in_features: int, num_experts: int, *, k: int = 2,
               gamma: float = 1.0, rngs: nnx.Rngs):
    self.k, self.gamma, self.num_experts = k, gamma, num_experts
    self.num_bits = code_matrices(num_experts)[0].shape[1]
    z_init = _uniform(gamma / 100)
    self.z = nnx.Linear(in_features, k * self.num_bits, kernel_init=z_init,
                        bias_init=z_init, rngs=rngs)
    w_init = _uniform(0.05)
    self.w = nnx.Linear(in_features, k, kernel_init=w_init, bias_init=w_init,
                        rngs=rngs)

  def selectors(self, x: jax.Array) -> jax.Array:
    """The single-expert selectors ``r(z_i)``: ``[B, k, n]``, rows on the simplex."""
    bits, to_expert = code_matrices(self.num_experts)
    s = smooth_step(self.z(x).reshape(x.shape[0], self.k, 1, self.num_bits),
                    self.gamma)
    per_code = jnp.prod(jnp.where(bits, s, 1.0 - s), axis=-1)  # [B, k, 2^m]
    return per_code @ to_expert

  def __call__(self, x: jax.Array) -> jax.Array:
    """Mixture weights ``[B, n]`` on the simplex."""
    a = jax.nn.softmax(self.w(x), axis=-1)
    return jnp.einsum("bk,bkn->bn", a, self.selectors(x))


class DSelectKMoE(MMoE):
  """MMoE whose per-task gates are DSelect-k gates (Hazimeh et al., 2021).

  Config as :class:`mtl_jax.models.mmoe.MMoE` plus ``k`` and ``gamma``;
  ``gate`` must be unset or ``'dselect_k'``.
  """

  gate_kind = "dselect_k"
