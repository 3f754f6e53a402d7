"""One process of a multi-process run of the tiny sprites config.

``python -m tests.train.multihost_run DATA_DIR WORKDIR OUT NUM_PROCESSES PROCESS_ID PORT``
(NUM_PROCESSES=1: a plain single-process run). Process 0 saves the final
parameters to OUT (.npz).
"""

import sys

import jax
import numpy as np


def main():
  data_dir, workdir, out, num, pid, port = sys.argv[1:7]
  from mtl_jax.train import distributed
  if int(num) > 1:
    distributed.initialize({"distributed": dict(
        coordinator_address=f"127.0.0.1:{port}", num_processes=int(num),
        process_id=int(pid))})
  jax.config.update("jax_default_matmul_precision", "highest")
  from mtl_jax.train import loop
  from tests import configs_loader
  c = configs_loader.load("sprites", "mlp")
  c.data.update(dict(data_dir=data_dir, image_size=16, num_train=256,
                     num_validation=64, num_test=128))
  c.model.trunk.hidden = (32, 16)
  c.optimizer.update(dict(name="sgd", learning_rate=0.05))
  c.method.aggregation = "mgda"
  c.train.update(dict(num_steps=5, batch_size=32, eval_batch_size=64, log_every=1,
                      checkpoint_every=0, tensorboard=False))
  result = loop.train(c, workdir=workdir, progress=False)
  assert jax.process_count() == int(num)
  params = jax.tree_util.tree_flatten_with_path(
      jax.device_get(jax.tree.map(lambda x: jax.experimental.multihost_utils
                                  .process_allgather(x, tiled=True), result.state.params)))[0]
  if jax.process_index() == 0:
    np.savez(out, **{jax.tree_util.keystr(k): v for k, v in params},
             accuracy=result.evaluation["test"]["shape"]["accuracy"])


if __name__ == "__main__":
  import jax.experimental.multihost_utils  # noqa: F401
  main()
