"""W2's LeNet trunk on XLA:CPU: which convolution formulation and XLA flags are fastest.

The W2 target (parity with PyTorch) is missed because XLA:CPU's convolutions
run far below oneDNN's. This study times forward + backward of the W2 trunk
(conv 5x5 -> max-pool 2 -> ReLU, twice, then fc; batch 256, 1x36x36) in
formulations that avoid XLA's convolution emitter, and the XLA CPU flags
that route convolutions to oneDNN / XNNPACK / YNNPACK, each flag set in its
own subprocess (XLA reads ``XLA_FLAGS`` once per process).

Formulations (all checked against ``lax.conv_general_dilated`` to 1e-5):

* ``xla``: ``lax.conv_general_dilated`` on NHWC (what ``workloads.LeNet`` uses);
* ``taps``: the sum over the 25 kernel taps of shifted-slice matmuls;
* ``row_taps``: the 5 width shifts stacked on channels, then 5 matmuls;
* ``im2col``: all 25 shifts stacked on channels, one matmul.

Run: ``python -m benchmarks.conv_study [--pin]``; writes
``results/conv_study.{json,md}``. Times are median process CPU ms per step
(steadier than wall time on a shared machine); compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
FLAG_SETS = (
    "",
    "--xla_cpu_use_onednn=true",
    "--xla_cpu_experimental_onednn_fusion_type=individual_convolution",
    "--xla_cpu_use_xnnpack=true",
    "--xla_cpu_experimental_xnn_fusion_type=individual_convolution",
    "--xla_cpu_experimental_ynn_fusion_type=individual_convolution",
    "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
)
BATCH, SIZE = 256, 36


def _formulations():
  import jax
  import jax.numpy as jnp

  def xla(x, k):
    return jax.lax.conv_general_dilated(
        x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def _shifts(x, k):
    kh, kw = k.shape[:2]
    return x.shape[1] - kh + 1, x.shape[2] - kw + 1

  def taps(x, k):
    h, w = _shifts(x, k)
    return sum(jnp.einsum("bhwc,cd->bhwd", x[:, i:i + h, j:j + w], k[i, j])
               for i in range(k.shape[0]) for j in range(k.shape[1]))

  def row_taps(x, k):
    h, w = _shifts(x, k)
    kh, kw, ci, co = k.shape
    rows = jnp.concatenate([x[:, :, j:j + w] for j in range(kw)], axis=-1)
    return sum(jnp.einsum("bhwc,cd->bhwd", rows[:, i:i + h], k[i].reshape(kw * ci, co))
               for i in range(kh))

  def im2col(x, k):
    h, w = _shifts(x, k)
    kh, kw, ci, co = k.shape
    patches = jnp.concatenate(
        [x[:, i:i + h, j:j + w] for i in range(kh) for j in range(kw)], axis=-1)
    return jnp.einsum("bhwc,cd->bhwd", patches, k.reshape(kh * kw * ci, co))

  return {"xla": xla, "taps": taps, "row_taps": row_taps, "im2col": im2col}


def _step(conv):
  import jax
  import jax.numpy as jnp

  def pool(y):
    b, h, w, c = y.shape
    return y.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))

  def loss(params, x):
    k1, k2, fc = params
    y = jax.nn.relu(pool(conv(x, k1)))
    y = jax.nn.relu(pool(conv(y, k2)))
    return jnp.sum((y.reshape(y.shape[0], -1) @ fc) ** 2)

  return jax.jit(jax.value_and_grad(loss))


def _inputs():
  import jax.numpy as jnp
  import numpy as np
  rng = np.random.default_rng(0)
  params = tuple(jnp.asarray(rng.normal(size=s).astype(np.float32) * c) for s, c in
                 (((5, 5, 1, 10), 0.2), ((5, 5, 10, 20), 0.1), ((720, 50), 0.05)))
  x = jnp.asarray(rng.normal(size=(BATCH, SIZE, SIZE, 1)).astype(np.float32))
  return params, x


def _cpu_ms(fn, args, repeats: int) -> float:
  import jax
  import numpy as np
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.process_time()
    jax.block_until_ready(fn(*args))
    times.append(time.process_time() - start)
  return float(np.median(times) * 1e3)


def measure(names, repeats: int) -> dict:
  """CPU ms per step for each formulation, in this process's XLA flags."""
  import jax
  import numpy as np
  params, x = _inputs()
  forms = _formulations()
  reference = _step(forms["xla"])(params, x)
  out = {}
  for name in names:
    value = _step(forms[name])(params, x)
    error = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
                for a, b in zip(jax.tree.leaves(value), jax.tree.leaves(reference)))
    if error > 1e-5:
      raise AssertionError(f"formulation {name!r} differs from lax.conv by {error:.1e}")
    out[name] = _cpu_ms(_step(forms[name]), (params, x), repeats)
  return out


def _child(flags: str, names, repeats: int) -> dict:
  env = dict(os.environ, XLA_FLAGS=flags)
  code = ("import json, sys; from benchmarks.conv_study import measure; "
          f"print(json.dumps(measure({list(names)!r}, {repeats})))")
  done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                        text=True, check=True, cwd=Path(__file__).parent.parent)
  return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pin", action="store_true", help="pin to one core")
  parser.add_argument("--repeats", type=int, default=15)
  args = parser.parse_args(argv)
  if args.pin:
    os.sched_setaffinity(0, {int(os.environ.get("MTL_JAX_BENCH_CORE", "1"))})
  rows = [dict(flags=flags or "(none)",
               ms=_child(flags, ("xla", "taps", "row_taps", "im2col") if not flags
                         else ("xla",), args.repeats))
          for flags in FLAG_SETS]
  env = dict(load_average=list(os.getloadavg()), pinned=args.pin, cpus=os.cpu_count(),
             time=time.strftime("%Y-%m-%d %H:%M:%S"))
  RESULTS.mkdir(exist_ok=True)
  (RESULTS / "conv_study.json").write_text(json.dumps(dict(environment=env, rows=rows),
                                                      indent=1))
  lines = [f"W2 trunk forward + backward, batch {BATCH}; median CPU ms per step; "
           f"{env}.", "", "| XLA_FLAGS | formulation | CPU ms |", "|---|---|---|"]
  lines += [f"| `{r['flags']}` | {name} | {ms:.1f} |" for r in rows
            for name, ms in r["ms"].items()]
  (RESULTS / "conv_study.md").write_text("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
