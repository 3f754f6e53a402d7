"""Mixed precision: low-precision compute, float32 parameters and statistics.

The policy of Micikevicius et al., "Mixed Precision Training", ICLR 2018
(arXiv:1710.03740), in the form JAX/Flax users know from big_vision and the
flax examples (``param_dtype=float32``, ``dtype=bfloat16``):

* **Stored in float32:** parameters, optimizer state, non-parameter model
  state (``rest``: batch-norm running statistics), weighting/aggregation state.
* **Computed in ``train.compute_dtype``:** the model's forward pass and its
  backward pass. The forward casts every floating parameter and every
  floating input to the compute dtype; gradients w.r.t. the float32
  parameters come back in float32 (the transpose of a cast is a cast).
* **Computed in float32:** the losses (predictions are cast back first), the
  per-task gradients (rows of the Jacobian, gradients w.r.t. float32
  parameters or the float32 representation ``z``), Gramians, loss weighting,
  aggregation and the optimizer update.

Batch normalisation. The running statistics stay float32 and are *not* cast
for the forward. Casting them to bfloat16 would make the running average
``m * r + (1 - m) * mean`` start every step from ``bf16(r)``: a relative
error of up to 2^-9 per step, larger than the ``(1 - m)`` update itself for
``m > 0.99``, so the statistics would wander. Leaving them float32 without
more would instead promote the normalised activations (and every layer after
them) back to float32. We therefore also set the ``dtype`` attribute of every
Flax layer to the compute dtype (Flax's own mixed-precision switch): a
``BatchNorm`` then normalises in the compute dtype, computes the batch
statistics in float32 (``flax.nnx`` promotes them to at least float32) and
updates the float32 running averages from their float32 values. Only the
batch statistics themselves carry the compute dtype's rounding, as in every
framework.

``float16`` is accepted but has no loss scaling: gradients smaller than
~6e-8 underflow to zero in the backward pass (non-finite ones make the step
skip its update). Prefer ``bfloat16``, which has float32's exponent range.
"""

from __future__ import annotations

from typing import Any, Union

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax.models.partition import merge as merge_groups

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
"""Valid values of ``train.compute_dtype``."""

DTypeLike = Union[str, Any]


def compute_dtype(name: DTypeLike = "float32") -> np.dtype:
  """The compute dtype for ``train.compute_dtype`` (a name or a dtype).

  Raises:
    ValueError: naming the key and the valid values.
  """
  for key, dtype in DTYPES.items():
    if name == key or (not isinstance(name, str) and _same_dtype(name, dtype)):
      return np.dtype(dtype)
  raise ValueError(f"train.compute_dtype must be one of {list(DTYPES)}, got {name!r}.")


def _same_dtype(a, b) -> bool:
  try:
    return np.dtype(a) == np.dtype(b)
  except TypeError:
    return False


def is_float32(dtype) -> bool:
  return np.dtype(dtype) == np.float32


def cast_floating(tree: Any, dtype) -> Any:
  """Casts the floating-point leaves of ``tree`` to ``dtype``; others unchanged."""
  def leaf(x):
    if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating):
      return jnp.asarray(x).astype(dtype)
    return x
  return jax.tree.map(leaf, tree)


def like(tree: Any, reference: Any) -> Any:
  """``tree`` with the dtypes of ``reference`` (same structure).

  Keeps the state's dtypes stable across steps (one compilation, donation,
  ``lax.scan`` carries) even if a model writes lower-precision values.
  """
  def leaf(x, r):
    if x.dtype == r.dtype or not jnp.issubdtype(r.dtype, jnp.floating):
      return x
    return x.astype(r.dtype)
  return jax.tree.map(leaf, tree, reference)


def merge(graphdef: Any, params: dict, rest: dict, dtype) -> Any:
  """The model for computing in ``dtype`` (see the module docstring).

  Floating parameters are cast to ``dtype``; ``rest`` is left in float32 and
  every Flax layer gets ``layer.dtype = dtype``. With ``float32`` this is
  the plain :func:`mtl_jax.models.partition.merge`.
  """
  if is_float32(dtype):
    return merge_groups(graphdef, params, rest)
  model = merge_groups(graphdef, cast_floating(params, dtype), rest)
  model.set_attributes(dtype=dtype, raise_if_not_found=False)
  return model
