"""Entropy of the DSelect-k selectors: pushes each towards one expert."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.models.dselect_k import code_weights
from mtl_jax.contracts import PyTree
from mtl_jax.models.partition import GROUPS
from mtl_jax.penalties.base import Penalty, describe, leaves_with_paths, sum_over_leaves

LEAF = "z_logits"


def selector_logits(params: dict) -> list[jax.Array]:
  """Every task-conditioned DSelect-k gate's selector logits ``[k, m]``.

  Args:
    params: ``{'shared', 'tasks', 'cross'}`` model parameters.

  Returns:
    Every leaf named ``z_logits``, wherever it sits: ``tasks/<task>/gate`` for
    ``arch='dselect_k'`` (or ``mmoe`` with ``gate='dselect_k'``), the
    per-level gates of ``cgc``/``ple`` and PLE's inner shared gates.

  Raises:
    ValueError: if there is none: the model has no DSelect-k gate, or only
      example-conditioned ones (``gate/z/kernel``), whose selectors depend on
      the input and so are no function of the parameters alone.
  """
  found = [((group,) + path, leaf) for group in GROUPS
           for path, leaf in leaves_with_paths(params.get(group, {}))]
  logits = [leaf for path, leaf in found if path[-1] == LEAF]
  if logits:
    return logits
  per_example = ["/".join(p[:-1]) for p, _ in found if p[-3:-1] == ("gate", "z")]
  if per_example:
    raise ValueError(
        f"its DSelect-k gates are example-conditioned (e.g. {per_example[0]}): "
        "their selectors depend on the input, so their entropy "
        "is not a function of the parameters. Build the gates with "
        "model.gate_conditioning='task' to use this penalty.")
  raise ValueError(
      f"it needs DSelect-k gates with task conditioning (leaves named {LEAF!r}: "
      "arch 'dselect_k', or gate='dselect_k' in mmoe/cgc/ple, with "
      f"gate_conditioning='task'); found {describe(params)}.")


def _entropy(r: jax.Array) -> jax.Array:
  """``-sum r log r`` over the last axis, with ``0 log 0 = 0`` (and a zero,
  not NaN, derivative there)."""
  positive = r > 0
  return -jnp.sum(jnp.where(positive, r * jnp.log(jnp.where(positive, r, 1.0)), 0.0),
                  axis=-1)


def dselect_entropy(z_logits: PyTree, gamma: float = 1.0) -> jax.Array:
  """DSelect-k's entropy regulariser: every single-expert selector to one-hot.

  .. math::
     \\Omega(Z) = \\sum_{\\text{gates}} \\sum_{i=1}^{k} h\\big(r(z_i)\\big),
     \\qquad h(r) = -\\sum_c r_c \\log r_c,

  where ``r(z_i)`` is selector ``i``'s weight on each of the ``2^m`` binary
  codes (:func:`~mtl_jax.models.dselect_k.code_weights`). ``h(r(z_i)) = 0``
  exactly when every smooth-step of ``z_i`` is saturated (``|z_il| >=
  gamma / 2``), i.e. the selector picks one expert, so the gate then mixes
  at most ``k`` experts; the combiner weights ``softmax(w)`` are not
  penalised. The entropy is over codes, not experts: the same for ``n`` a
  power of two, and for other ``n`` (codes ``c >= n`` aliased to expert ``c
  mod n``) it is zero only at saturation too. Its derivative is finite,
  and zero at saturated logits, where ``S' = 0``.

  The authors' implementation sums ``-r log(r + 1e-6)`` over the selectors
  (and, for example-conditioned gates, over the batch); here the exact
  entropy, on task-conditioned gates only (parameters ``z_logits``), since a
  penalty is a function of the parameters.

  Args:
    z_logits: selector logits ``[k, m]``, or a pytree of them (one per gate).
    gamma: the gates' smooth-step width, ``model.gamma``: built from a model
      config (``penalties.build(..., model_config)``, as the trainer does),
      the penalty reads it from there.

  Returns:
    A scalar.

  Examples:
    >>> import jax.numpy as jnp
    >>> z = jnp.array([[0.0, 1.0]])  # bit 2 saturated: codes 01 and 11 at 1/2
    >>> round(float(dselect_entropy(z)), 4)  # log 2
    0.6931

  References:
    Hazimeh, Zhao, Chowdhery, Sathiamoorthy, Chen, Mazumder, Hong & Chi,
    "DSelect-k: Differentiable Selection in the Mixture of Experts with
    Applications to Multi-Task Learning", NeurIPS 2021, arXiv:2106.03760
    (entropy regularisation); code: github.com/google-research/
    google-research/tree/master/dselect_k_moe.
  """
  return sum_over_leaves(lambda z: jnp.sum(_entropy(code_weights(z, gamma))), z_logits)


PENALTY = Penalty(dselect_entropy, select=selector_logits, model_options=("gamma",))
