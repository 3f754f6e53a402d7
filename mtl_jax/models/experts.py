"""Experts and gates: the building blocks of the mixture-of-experts models.

MMoE (:mod:`mtl_jax.models.mmoe`), CGC (:mod:`mtl_jax.models.cgc`), PLE
(:mod:`mtl_jax.models.ple`) and DSelect-k (:mod:`mtl_jax.models.dselect_k`)
share two pieces:

* :class:`Experts`: ``E`` MLPs of identical shape whose weights are stacked on
  a leading expert axis, so all experts run as one batched op:
  ``[B, in] -> [E, B, out]``.
* a gate: ``[B, in] -> [B, E]`` mixture weights on the simplex, either the
  softmax gate of MMoE (:class:`SoftmaxGate`) or the k-sparse DSelect-k gate;
  :func:`build_gate` picks one from ``config.gate``.

:func:`mix` combines them: ``sum_e g[b, e] f_e(x)[b]``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.trunks import activation

GATES = ("softmax", "dselect_k")


def positive_int(value: Any, field: str) -> int:
  """``value`` as an int >= 1, else a ValueError naming ``field``."""
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"{field} must be a positive integer, got {value!r}.")
  return value


def widths(value: Any, field: str) -> tuple[int, ...]:
  """A non-empty sequence of positive layer widths, else a ValueError."""
  if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
    raise ValueError(f"{field} must be a non-empty sequence of positive integers, "
                     f"got {value!r}.")
  return tuple(positive_int(v, field) for v in value)


def flat_size(input_shape: Sequence[int]) -> int:
  """Number of features of one flattened example."""
  return math.prod(int(d) for d in input_shape)


class Experts(nnx.Module):
  """``num`` MLP experts stacked on a leading axis: ``[B, in] -> [E, B, out]``.

  Each expert is ``act(W_L ... act(W_1 x + b_1) ... + b_L)`` (activation after
  every layer, as a shared-bottom trunk). Kernels ``[E, in, out]`` are
  initialised like ``nnx.Linear`` (LeCun normal per expert), biases at zero.

  Args:
    num: number of experts ``E``.
    in_features: input size.
    hidden: layer widths of each expert; the last is the output size.
    act: activation name (see :mod:`mtl_jax.models.trunks`).
    rngs: initialisation keys.
  """

  def __init__(self, num: int, in_features: int, hidden: Sequence[int], *,
               act: str = "relu", rngs: nnx.Rngs):
    activation(act)  # Fails early on an unknown name.
    init = jax.nn.initializers.lecun_normal(batch_axis=(0,))
    sizes = [in_features, *hidden]
    self.kernels = nnx.List([nnx.Param(init(rngs.params(), (num, a, b)))
                             for a, b in zip(sizes[:-1], sizes[1:])])
    self.biases = nnx.List([nnx.Param(jnp.zeros((num, b))) for b in sizes[1:]])
    self.act = act
    self.num = num
    self.out_features = sizes[-1]

  def __call__(self, x: jax.Array) -> jax.Array:
    """``x [B, in]`` -> ``[E, B, out]``."""
    fn = activation(self.act)
    h = fn(jnp.einsum("bi,eio->ebo", x, self.kernels[0][...])
           + self.biases[0][...][:, None])
    for kernel, bias in zip(list(self.kernels)[1:], list(self.biases)[1:]):
      h = fn(jnp.einsum("ebi,eio->ebo", h, kernel[...]) + bias[...][:, None])
    return h


class SoftmaxGate(nnx.Module):
  """``softmax(W x + b)``: dense mixture weights over ``num_experts``.

  The gate of MMoE (Ma et al., KDD 2018, Eq. 8).
  """

  def __init__(self, in_features: int, num_experts: int, *, rngs: nnx.Rngs):
    self.logits = nnx.Linear(in_features, num_experts, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """``x [B, in]`` -> weights ``[B, E]``, each row on the simplex."""
    return jax.nn.softmax(self.logits(x), axis=-1)


def build_gate(config, in_features: int, num_experts: int, *, rngs: nnx.Rngs,
               kind: str | None = None) -> nnx.Module:
  """The gate named by ``config.gate`` (``softmax`` or ``dselect_k``).

  ``config.k`` (DSelect-k: maximum number of selected experts, default 2,
  capped at ``num_experts``), ``config.gamma`` (smooth-step width, default
  1.0) and ``config.gate_conditioning`` (``"example"``, the default, or
  ``"task"`` for input-independent selections) configure the DSelect-k gate.
  ``kind`` overrides ``config.gate``.
  """
  kind = kind or config.get("gate", "softmax")
  conditioning = config.get("gate_conditioning", "example")
  if kind == "softmax":
    if conditioning != "example":
      raise ValueError("model.gate_conditioning applies to DSelect-k gates only "
                       f"(model.gate='dselect_k'); got {conditioning!r} with the "
                       "softmax gate.")
    return SoftmaxGate(in_features, num_experts, rngs=rngs)
  if kind == "dselect_k":
    from mtl_jax.models.dselect_k import DSelectKGate  # pylint: disable=g-import-not-at-top
    k = positive_int(config.get("k", 2), "model.k")
    gamma = config.get("gamma", 1.0)
    if not isinstance(gamma, (int, float)) or gamma <= 0:
      raise ValueError(f"model.gamma must be a positive number, got {gamma!r}.")
    return DSelectKGate(in_features, num_experts, k=min(k, num_experts),
                        gamma=float(gamma), conditioning=conditioning, rngs=rngs)
  raise ValueError(f"model.gate must be one of {GATES}, got {kind!r}.")


def mix(weights: jax.Array, expert_outputs: jax.Array) -> jax.Array:
  """``weights [B, E]``, ``expert_outputs [E, B, D]`` -> ``[B, D]``."""
  return jnp.einsum("be,ebd->bd", weights, expert_outputs)
