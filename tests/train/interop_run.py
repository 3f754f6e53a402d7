"""Aggregators inside a user's own pmap and shard_map (8 forced host devices).

Each device computes per-task gradients on its shard of the batch, averages
them with ``lax.pmean`` and aggregates; the result must equal aggregating the
full-batch Jacobian on one device. Prints the largest difference.
"""

import json
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, PartitionSpec as P

import mtl_jax
from mtl_jax.aggregation import per_task_grads

jax.config.update("jax_default_matmul_precision", "highest")


def losses_fn(params, x, y):
  h = jnp.tanh(x @ params["w"])
  return jnp.stack([jnp.mean((h @ params["v"][t] - y[:, t]) ** 2) for t in range(3)])


def main():
  n = jax.device_count()
  rng = np.random.default_rng(0)
  params = {"w": jnp.asarray(rng.normal(size=(5, 6)), jnp.float32),
            "v": jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)}
  x = jnp.asarray(rng.normal(size=(8 * n, 5)), jnp.float32)
  y = jnp.asarray(rng.normal(size=(8 * n, 3)), jnp.float32)
  agg = mtl_jax.aggregation.get("upgrad")
  state = agg.init(3, params)
  dw = mtl_jax.weighting.get("dwa")

  def direction(grads, losses):
    weights, _ = dw.update(losses, dw.init(3), step=0, key=jax.random.PRNGKey(0))
    grads = jax.tree.map(lambda g: g * weights.reshape((-1,) + (1,) * (g.ndim - 1)), grads)
    return agg.update(grads, state, step=0, key=jax.random.PRNGKey(0))[0]

  losses, grads = per_task_grads(losses_fn, params, x, y)
  reference = direction(grads, losses)

  @partial(jax.pmap, axis_name="batch", in_axes=(None, 0, 0))
  def pmapped(params, x, y):
    losses, grads = per_task_grads(losses_fn, params, x, y)
    losses, grads = jax.lax.pmean((losses, grads), "batch")
    return direction(grads, losses)

  out_pmap = jax.tree.map(lambda a: a[0], pmapped(params, x.reshape(n, 8, 5),
                                                  y.reshape(n, 8, 3)))
  mesh = jax.make_mesh((n,), ("batch",), axis_types=(AxisType.Auto,))

  @jax.jit
  @partial(jax.shard_map, mesh=mesh, in_specs=(P(), P("batch"), P("batch")),
           out_specs=P())
  def sharded(params, x, y):
    # In shard_map, differentiate the global (pmean'd) losses: the gradient
    # w.r.t. the replicated params is then already the global Jacobian.
    global_losses = lambda p, x, y: jax.lax.pmean(losses_fn(p, x, y), "batch")
    losses, grads = per_task_grads(global_losses, params, x, y)
    return direction(grads, losses)

  out_shard = sharded(params, x, y)
  diff = lambda a, b: max(float(jnp.abs(u - v).max()) for u, v in
                          zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  scale = max(float(jnp.abs(u).max()) for u in jax.tree.leaves(reference))
  print(json.dumps({"devices": n, "pmap": diff(out_pmap, reference),
                    "shard_map": diff(out_shard, reference), "scale": scale}))


if __name__ == "__main__":
  main()
