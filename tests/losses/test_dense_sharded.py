"""Dense losses, gradients and metric statistics: 8 forced host devices == 1.

The test runs this module (``python -m tests.losses.test_dense_sharded``) in
a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``; the script computes
everything under jit once unsharded on one device and once with the batch
split over 8 devices, and prints the differences as one JSON line.
"""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_dense_losses_and_metrics_on_8_devices_equal_one_device():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-m", "tests.losses.test_dense_sharded"],
                       cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["devices"] == 8 and result["sharded"], result
  assert result["counts_equal"] and result["integer_stats_equal"], result
  assert result["loss_rel_diff"] <= 1e-6, result
  assert result["grad_max_diff"] <= 1e-7, result
  assert result["float_stats_rel_diff"] <= 1e-6, result
  assert result["loss_count_positive"], result


def _main():
  import jax
  import numpy as np
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

  from mtl_jax import tasks as tasks_lib
  from mtl_jax.losses import metrics as metrics_lib, task_losses
  from mtl_jax.train.step import make_counts

  tasks = tasks_lib.from_config({
      "seg": dict(kind="segmentation", num_classes=4),
      "depth": dict(kind="depth"), "normals": dict(kind="normals")})
  b, h, w = 8, 8, 8
  r = np.random.default_rng(0)
  labels = r.integers(0, 4, (b, h, w)).astype(np.int32)
  labels[r.random((b, h, w)) < 0.3] = -1
  labels[:3] = -1  # the first device's rows and more have few labels
  depth = r.uniform(0.5, 4.0, (b, h, w)).astype(np.float32)
  depth[r.random((b, h, w)) < 0.3] = 0.0
  normals = r.normal(size=(b, h, w, 3)).astype(np.float32)
  normals[r.random((b, h, w)) < 0.3] = 0.0
  mask = np.array([True, True, False, True, True, False, True, True])
  depth[~mask], normals[~mask] = np.nan, np.nan
  preds = {"seg": r.normal(size=(b, h, w, 4)).astype(np.float32),
           "depth": r.uniform(0.5, 4.0, (b, h, w, 1)).astype(np.float32),
           "normals": r.normal(size=(b, h, w, 3)).astype(np.float32)}
  batch = {"targets": {"seg": labels, "depth": depth, "normals": normals},
           "mask": {t.name: mask.copy() for t in tasks}}

  def f(preds, batch):
    def total(p):
      losses, counts = task_losses(tasks, p, batch)
      return losses.sum(), (losses, counts)
    grads, (losses, counts) = jax.grad(total, has_aux=True)(preds)
    return {"losses": losses, "counts": counts, "grads": grads,
            "make_counts": make_counts(tasks)(batch),
            "stats": metrics_lib.batch_stats(tasks, preds, batch)}

  single = jax.device_get(jax.jit(f)(preds, batch))
  mesh = Mesh(np.array(jax.devices()), ("data",))
  put = lambda x: jax.device_put(x, NamedSharding(mesh, P("data")))
  sharded_in = jax.tree.map(put, (preds, batch))
  sharded = jax.device_get(jax.jit(f)(*sharded_in))

  ints = [np.array_equal(a, c) for a, c in zip(jax.tree.leaves(single["stats"]),
                                               jax.tree.leaves(sharded["stats"]))
          if np.issubdtype(np.asarray(a).dtype, np.integer)]
  floats = [float(np.max(np.abs(a - c) / np.maximum(np.abs(a), 1e-12)))
            for a, c in zip(jax.tree.leaves(single["stats"]),
                            jax.tree.leaves(sharded["stats"]))
            if not np.issubdtype(np.asarray(a).dtype, np.integer)]
  grads = [float(np.max(np.abs(a - c))) for a, c in
           zip(jax.tree.leaves(single["grads"]), jax.tree.leaves(sharded["grads"]))]
  print(json.dumps({
      "devices": len(jax.devices()),
      "sharded": len(sharded_in[0]["seg"].sharding.device_set) == 8,
      "counts_equal": bool(np.array_equal(single["counts"], sharded["counts"])
                           and np.array_equal(single["counts"], single["make_counts"])
                           and np.array_equal(sharded["counts"], sharded["make_counts"])),
      "loss_count_positive": bool(np.all(single["counts"] > 0)),
      "loss_rel_diff": float(np.max(np.abs(single["losses"] - sharded["losses"])
                                    / np.abs(single["losses"]))),
      "grad_max_diff": max(grads),
      # 2 confusion matrices, 1 histogram and 9 pixel counts.
      "integer_stats_equal": all(ints) and len(ints) == 12,
      "float_stats_rel_diff": max(floats),
  }))


if __name__ == "__main__":
  _main()
