"""Placing the train step on a device mesh with ``jax.sharding``.

Data parallel by default: a 1-D mesh axis ``data`` over all devices; every
batch is split along its first axis and the state is replicated. With
``mesh.fsdp=True`` the parameters and optimizer state are also split along
``data`` (FSDP-style: each array on its largest dimension divisible by the
device count; small or indivisible arrays stay replicated). Either way the
step computes per-task losses and gradients over the *global* batch, so N
devices give the same numbers as one.

Multi-host: every process calls :func:`global_batch` with its own slice of
the global batch (the data pipeline hands each process its slice).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA = "data"


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D ``data`` mesh over ``num_devices`` devices (0: all)."""
  n = int(num_devices or jax.device_count())
  if not 1 <= n <= jax.device_count():
    raise ValueError(f"mesh.num_devices={n} but {jax.device_count()} devices exist.")
  return jax.make_mesh((n,), (DATA,), axis_types=(AxisType.Auto,),
                       devices=jax.devices()[:n])


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Split the leading (batch) axis over ``data``."""
  return NamedSharding(mesh, P(DATA))


def _fsdp_spec(shape, n: int, min_size: int) -> P:
  if n == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
    return P()
  for axis in np.argsort(shape)[::-1]:
    if shape[axis] % n == 0:
      spec = [None] * len(shape)
      spec[axis] = DATA
      return P(*spec)
  return P()


def state_sharding(mesh: Mesh, abstract_state: Any, *, fsdp: bool = False,
                   min_size: int = 2 ** 14) -> Any:
  """Shardings for every leaf of the (abstract) train state."""
  n = mesh.shape[DATA]
  def leaf(x):
    if not fsdp or not hasattr(x, "shape") or len(x.shape) == 0:
      return replicated(mesh)
    return NamedSharding(mesh, _fsdp_spec(x.shape, n, min_size))
  return jax.tree.map(leaf, abstract_state)


def global_batch(batch: dict, mesh: Mesh, global_batch_size: int) -> dict:
  """Assembles this process's slice of the batch into sharded global arrays."""
  if global_batch_size % mesh.shape[DATA]:
    raise ValueError(f"Global batch size {global_batch_size} is not divisible by "
                     f"the {mesh.shape[DATA]} devices of the data axis.")
  sharding = batch_sharding(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(
          sharding, np.asarray(x), (global_batch_size,) + np.shape(x)[1:]), batch)
