"""A checkpoint written on 8 devices restores on 1 and on 2 (FSDP), then trains on.

Run as ``python -m tests.train.reshard_run DATA_DIR WORKDIR`` with
XLA_FLAGS=--xla_force_host_platform_device_count=8 set by the caller. Trains
4 steps on 8 devices with FSDP (parameters split), restores the final
checkpoint into the state layout of 1 device and of 2 devices, and resumes
each for 2 more steps. Prints one JSON line: the largest difference between
the restored and the saved parameters (expected 0: restoring moves bytes),
the devices each restored leaf lies on, and the largest difference after the
resumed steps against an uninterrupted 6-step run on 8 devices.
"""

import json
import shutil
import sys

import jax

jax.config.update("jax_default_matmul_precision", "highest")

from mtl_jax.train import checkpoint, loop  # noqa: E402
from tests.train import sharded_run  # noqa: E402


def _config(data_dir, num_devices, num_steps):
  c = sharded_run.config(data_dir, "none", num_devices, fsdp=num_devices > 1)
  c.train.update(dict(num_steps=num_steps, checkpoint_every=num_steps))
  return c


def _max_diff(a, b) -> float:
  diff = jax.tree.map(lambda x, y: float(abs(x - y).max()),
                      jax.device_get(a), jax.device_get(b))
  return max(jax.tree.leaves(diff))


def _restored(config, workdir):
  """The newest checkpoint of ``workdir`` laid out for ``config``'s mesh."""
  s = loop.setup(config)
  compiled = loop.compile_run(s)
  ckpt = checkpoint.Checkpointer(f"{workdir}/checkpoints", every=0)
  try:
    state, _, _ = ckpt.restore(compiled.abstract_state, checkpoint.meta_for(s.tasks, config))
  finally:
    ckpt.close()
  return state


def main():
  data_dir, workdir = sys.argv[1:3]
  assert jax.device_count() == 8, jax.device_count()
  saved = loop.train(_config(data_dir, 8, 4), workdir=f"{workdir}/w8", progress=False)
  full = loop.train(_config(data_dir, 8, 6), workdir=f"{workdir}/full", progress=False)
  out = {}
  for n in (1, 2):
    state = _restored(_config(data_dir, n, 4), f"{workdir}/w8")
    out[f"restore_diff_{n}"] = _max_diff(state.params, saved.state.params)
    out[f"devices_{n}"] = sorted({len(x.sharding.device_set)
                                  for x in jax.tree.leaves(state.params)})
    shutil.copytree(f"{workdir}/w8", f"{workdir}/r{n}")
    resumed = loop.train(_config(data_dir, n, 6), workdir=f"{workdir}/r{n}",
                         resume=True, progress=False)
    out[f"resume_diff_{n}"] = _max_diff(resumed.state.params, full.state.params)
    out[f"step_{n}"] = int(resumed.state.step)
  out["split_on_8"] = any(not x.sharding.is_fully_replicated
                          for x in jax.tree.leaves(saved.state.params))
  print(json.dumps(out))


if __name__ == "__main__":
  main()
