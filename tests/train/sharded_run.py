"""Trains the tiny sprites config on 1 and on 8 forced host devices.

Run as ``python -m tests.train.sharded_run DATA_DIR WORKDIR METHOD [OPTION]``
with XLA_FLAGS=--xla_force_host_platform_device_count=8 set by the caller;
prints one JSON line with the largest parameter difference. OPTION ``fsdp``
splits the parameters on 8 devices; ``accumulate`` runs the 8-device side
as 2 micro-batches (against the whole batch on one device).

``python -m tests.train.sharded_run collectives`` prints the collectives in
the compiled 8-device step accumulated over 2 micro-batches.
"""

import json
import re
import sys

import jax

jax.config.update("jax_default_matmul_precision", "highest")

from mtl_jax.train import loop  # noqa: E402
from tests import configs_loader  # noqa: E402


def config(data_dir, method, num_devices, fsdp, accumulation_steps=1):
  c = configs_loader.load("sprites", "mlp")
  c.data.update(dict(data_dir=data_dir, image_size=16, num_train=256,
                     num_validation=64, num_test=128))
  c.model.trunk.hidden = (64, 32)
  c.train.update(dict(num_steps=6, batch_size=32, eval_batch_size=64, log_every=1,
                      checkpoint_every=0, accumulation_steps=accumulation_steps))
  # SGD: Adam's normalisation would amplify the (legitimate) float
  # reassociation differences of sharded reductions in near-zero gradients.
  c.optimizer.update(dict(name="sgd", learning_rate=0.05))
  c.method.aggregation = None if method == "none" else method  # from argv
  c.mesh = dict(num_devices=num_devices, fsdp=fsdp)
  return c


def collectives():
  """Counts of each collective in the compiled, accumulated 8-device step."""
  from mtl_jax.train import sharding
  from mtl_jax.train.step import make_train_step
  from tests.train import helpers as h
  mesh = sharding.make_mesh(num_devices=8)
  p, method, tx, state = h.setup()
  step = make_train_step(p.graphdef, h.TASKS, method, tx, accumulation_steps=2)
  replicated = sharding.replicated(mesh)
  state_sharding = jax.tree.map(lambda _: replicated, state)
  text = jax.jit(step, in_shardings=(state_sharding, sharding.batch_sharding(mesh)),
                 out_shardings=(state_sharding, replicated)).lower(
                     state, h.batch(0, size=32)).compile().as_text()
  ops = ("all-to-all", "all-gather", "collective-permute", "all-reduce")
  print(json.dumps({op: len(re.findall(rf"\b{op}(-start)?\(", text)) for op in ops}))


def main():
  assert jax.device_count() == 8, jax.device_count()
  if sys.argv[1] == "collectives":
    return collectives()
  data_dir, workdir, method = sys.argv[1:4]
  option = sys.argv[4] if len(sys.argv) > 4 else ""
  fsdp, accumulate = option == "fsdp", option == "accumulate"
  results = {n: loop.train(config(data_dir, method, n, fsdp and n > 1,
                                  2 if accumulate and n > 1 else 1),
                           workdir=f"{workdir}/{n}", progress=False)
             for n in (1, 8)}
  diff = jax.tree.map(lambda a, b: float(abs(a - b).max()),
                      jax.device_get(results[1].state.params),
                      jax.device_get(results[8].state.params))
  sharded = results[8].state.params["shared"]
  print(json.dumps({
      "max_diff": max(jax.tree.leaves(diff)),
      "devices": [len(x.sharding.device_set) for x in jax.tree.leaves(sharded)],
      "split": [not x.sharding.is_fully_replicated for x in jax.tree.leaves(sharded)],
      "metrics_1": results[1].evaluation["test"]["shape"]["accuracy"],
      "metrics_8": results[8].evaluation["test"]["shape"]["accuracy"]}))


if __name__ == "__main__":
  main()
