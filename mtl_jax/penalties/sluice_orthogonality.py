"""Sluice networks' subspace orthogonality loss on each column's layer kernels."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtl_jax.contracts import PyTree
from mtl_jax.penalties.base import Penalty, describe, leaves_with_paths, sum_over_leaves
from mtl_jax.penalties.orthogonality import orthogonality


def _subspaces(params: dict) -> int:
  """``m``, the subspaces per layer, from ``cross['alpha'] [L, K m, K m]``."""
  cross = params.get("cross", {})
  if "alpha" not in cross:
    raise ValueError("it needs a sluice network (arch 'cross_stitch' with "
                     f"sluice=True): no cross['alpha']; found {describe(params)}.")
  if "beta" not in cross:
    raise ValueError("it needs a sluice network, but this cross-stitch network has "
                     "sluice=False (no cross['beta']); set model.sluice=True and "
                     "model.subspaces >= 2.")
  m = cross["alpha"].shape[-1] // len(params["tasks"])
  if m < 2:
    raise ValueError(f"this sluice network has {m} subspace per layer, so there is "
                     "nothing to make orthogonal; set model.subspaces >= 2.")
  return m


def subspace_kernels(params: dict) -> list[jax.Array]:
  """Every column's layer kernels, split into their ``m`` subspaces.

  Args:
    params: a sluice network's parameters (``arch='cross_stitch'``,
      ``sluice=True``): ``tasks/<task>/column/.../kernel`` for every trunk
      stage (MLP ``layers/<i>/kernel`` ``[in, C]``; CNN ``convs/<i>/kernel``
      ``[h, w, c_in, C]`` and ``dense/kernel``), and ``cross/alpha``, whose
      size ``K m`` gives ``m``.

  Returns:
    One ``[m, ..., C / m]`` array per column and stage: the kernel's output
    channels in ``m`` contiguous blocks, the subspaces that the sluice units
    mix (:func:`mtl_jax.models.cross_stitch.mix`).

  Raises:
    ValueError: for a model that is no sluice network, has one subspace, or
      whose columns hold no stage kernels.
  """
  m = _subspaces(params)
  blocks = []
  for name, task in sorted(params["tasks"].items()):
    kernels = [k for p, k in leaves_with_paths(task.get("column", {})) if p[-1] == "kernel"]
    if len(kernels) != params["cross"]["alpha"].shape[0]:
      raise ValueError(f"tasks/{name}/column has {len(kernels)} kernels, but the "
                       f"network has {params['cross']['alpha'].shape[0]} sluice "
                       f"units; found {describe(params)}.")
    for k in kernels:
      split = k.reshape(*k.shape[:-1], m, k.shape[-1] // m)
      blocks.append(jnp.moveaxis(split, -2, 0))
  return blocks


def sluice_orthogonality(subspaces: PyTree) -> jax.Array:
  """Subspace orthogonality (sluice networks): the subspaces of a layer learn
  different features.

  .. math::
     \\mathcal{L}_c = \\sum_{\\text{columns } t} \\sum_{\\text{layers } l}
       \\sum_{a < b} \\big\\|W_{t,l,a}^\\top W_{t,l,b}\\big\\|_F^2,

  with ``W_{t,l,a}`` the ``[inputs, C / m]`` block of column ``t``'s layer-``l``
  kernel that produces subspace ``a`` (conv taps as rows, see
  :func:`~mtl_jax.penalties.base.as_matrices`). With the paper's ``m = 2``
  this is its ``||G_1^T G_2||_F^2`` per layer and model; it is zero iff every
  unit of one subspace has a weight vector orthogonal to every unit of the
  others. Gradient w.r.t. ``W_a``: ``2 sum_{b != a} W_b W_b^T W_a``.

  The paper (after Bousmalis et al.'s domain separation loss) states the
  loss on the subspaces, and the authors' code applies it to the columns'
  weight matrices (by default two of each LSTM layer's matrices); here to
  every stage kernel of every column. (Their DyNet code multiplies the
  blocks as ``S_1^T S_2`` with units as rows, an ``inputs x inputs``
  product; we follow the stated orthogonality of the subspaces, a
  ``units x units`` product.)

  Args:
    subspaces: an array ``[m, ..., C / m]`` (a kernel split into its
      subspaces, see :func:`subspace_kernels`) or a pytree of them.

  Returns:
    A scalar.

  Examples:
    >>> import jax.numpy as jnp
    >>> w = jnp.array([[[1.0], [2.0]], [[3.0], [1.0]]])  # m = 2 blocks of one unit
    >>> float(sluice_orthogonality(w))  # (1 * 3 + 2 * 1) ** 2
    25.0

  References:
    Ruder, Bingel, Augenstein & Søgaard, "Latent Multi-task Architecture
    Learning", AAAI 2019, arXiv:1705.08142 (the orthogonality constraint
    L_c); code: github.com/sebastianruder/sluice-networks.
    Bousmalis, Trigeorgis, Silberman, Krishnan & Erhan, "Domain Separation
    Networks", NeurIPS 2016, arXiv:1608.06019.
  """
  return sum_over_leaves(orthogonality, subspaces)


PENALTY = Penalty(sluice_orthogonality, select=subspace_kernels)
