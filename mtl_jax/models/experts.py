"""Experts and gates: the building blocks of the mixture-of-experts models.

MMoE (:mod:`mtl_jax.models.mmoe`), CGC (:mod:`mtl_jax.models.cgc`), PLE
(:mod:`mtl_jax.models.ple`) and DSelect-k (:mod:`mtl_jax.models.dselect_k`)
share two pieces:

* :class:`Experts`: ``E`` MLPs of identical shape whose weights are stacked on
  a leading expert axis, so all experts run as one batched op:
  ``[B, in] -> [E, B, out]``.
* a gate: ``[B, in] -> [B, E]`` mixture weights on the simplex, either the
  softmax gate of MMoE (:class:`SoftmaxGate`) or the k-sparse DSelect-k gate
  (:class:`mtl_jax.models.dselect_k_gate.DSelectKGate`); :func:`build_gate`
  builds one by name.

:func:`mix` combines them: ``sum_e g[b, e] f_e(x)[b]``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mtl_jax.models.dselect_k_gate import CONDITIONINGS, DSelectKGate
from mtl_jax.models.options import group
from mtl_jax.models.trunks import activation
from mtl_jax.validators import choice, positive, positive_int, widths

GATES = ("softmax", "dselect_k")


def expert_options(experts: Optional[Mapping[str, Any]], owner: str,
                   defaults: Mapping[str, Any]) -> dict[str, Any]:
  """An architecture's ``experts`` option group: merged over ``defaults``,
  unknown keys refused, counts (``num*``) positive integers and ``hidden``
  non-empty positive widths. ``owner`` leads the messages."""
  opts = group(experts, f"{owner}: experts", defaults)
  for key in opts:
    if key.startswith("num"):
      opts[key] = positive_int(opts[key], f"{owner}: experts.{key}")
  opts["hidden"] = widths(opts["hidden"], f"{owner}: experts.hidden")
  return opts


def gate_options(owner: str, *, gate: str, k: Any, gamma: Any,
                 gate_conditioning: str) -> dict[str, Any]:
  """An architecture's gate options, checked: keyword arguments for
  :func:`build_gate`. ``k`` and ``gamma`` are only read (and checked) for
  DSelect-k gates. ``owner`` leads the messages."""
  choice(gate, f"{owner}: gate", GATES)
  choice(gate_conditioning, f"{owner}: gate_conditioning", CONDITIONINGS)
  if gate == "softmax":
    if gate_conditioning != "example":
      raise ValueError(f"{owner}: gate_conditioning applies to DSelect-k gates only "
                       f"(gate='dselect_k'); got {gate_conditioning!r} with the "
                       "softmax gate.")
    return dict(kind=gate)
  return dict(kind=gate, k=positive_int(k, f"{owner}: k"),
              gamma=positive(gamma, f"{owner}: gamma"), conditioning=gate_conditioning)


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


def build_gate(kind: str, in_features: int, num_experts: int, *, rngs: nnx.Rngs,
               k: int = 2, gamma: float = 1.0, conditioning: str = "example") -> nnx.Module:
  """A gate ``[B, in_features] -> [B, num_experts]``.

  Args:
    kind: ``'softmax'`` (:class:`SoftmaxGate`) or ``'dselect_k'``
      (:class:`~mtl_jax.models.dselect_k_gate.DSelectKGate`).
    in_features: input size.
    num_experts: number of experts mixed.
    rngs: initialisation keys.
    k: DSelect-k: maximum number of selected experts, capped at ``num_experts``.
    gamma: DSelect-k: smooth-step width.
    conditioning: DSelect-k: ``'example'`` (logits from the input) or
      ``'task'`` (input-independent selections); the softmax gate takes
      ``'example'`` only.
  """
  choice(kind, "gate", GATES)
  if kind == "softmax":
    if conditioning != "example":
      raise ValueError("conditioning applies to DSelect-k gates only; got "
                       f"{conditioning!r} with the softmax gate.")
    return SoftmaxGate(in_features, num_experts, rngs=rngs)
  k = positive_int(k, "DSelect-k gate: k")
  return DSelectKGate(in_features, num_experts, k=min(k, num_experts), gamma=gamma,
                      conditioning=conditioning, rngs=rngs)


def mix(weights: jax.Array, expert_outputs: jax.Array) -> jax.Array:
  """``weights [B, E]``, ``expert_outputs [E, B, D]`` -> ``[B, D]``; feature
  maps ``[E, B, h, w, C]`` are mixed per example the same way (-> ``[B, h, w, C]``)."""
  return jnp.einsum("be,eb...->b...", weights, expert_outputs)
