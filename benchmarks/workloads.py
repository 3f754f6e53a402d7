"""The benchmark workloads: W1 and W2 from the peers' exact weights, W3 for GPUs.

Both workloads are defined in ``shared/reference/PEERS.md``; the ``.npz`` files
in ``shared/reference/peer_workloads/`` hold the initial weights and the batch
the PyTorch peers used, in PyTorch layouts (keys ``enc.<name>``,
``head<k>.weight``, ``head<k>.bias``, ``x``, ``y<k>``). :func:`load` converts
them to our models, so our step does byte-identical work:

* **W1**: MLP trunk 64 -> 256 -> 256 (ReLU after both layers), ``K`` heads
  ``Linear(256 -> 1)``, MSE, batch 256. Our model is the library's own
  ``hard_sharing`` architecture (``trunks.MLP`` + ``heads.Head``).
* **W2**: LeNet trunk on 1x36x36 images (conv 10 5x5 -> max-pool 2 -> ReLU ->
  conv 20 5x5 -> max-pool 2 -> ReLU -> flatten -> fc 50, no activation after
  it), 2 heads ``Linear(50 -> 10)``, cross-entropy, batch 256. The trunk is
  :class:`LeNet` below (our inputs are NHWC unless ``conv='xla_nchw'``).
* **W3** (for GPUs): ResNet-18 trunk (CIFAR stem, :mod:`mtl_jax.models.resnet`,
  11.2 M parameters, batch norm) on 3x32x32 images, ``K`` heads
  ``Linear(512 -> 10)``, cross-entropy, batch 256, our ``hard_sharing``
  model. No peer file: weights from ``seed`` and a batch of uniform images and
  random labels from ``seed`` (:func:`load` options ``width``, ``image_size``,
  ``batch`` shrink it for CPU tests). About 0.56 GFLOP per image forward, so
  ~430 GFLOP per summed-loss step: minutes per step on this CPU.

Layout conversions: ``Linear.weight [out, in] -> kernel [in, out]``;
``Conv2d.weight [out, in, kh, kw] -> kernel [kh, kw, in, out]``; images
``NCHW -> NHWC``; the fc after the NCHW flatten has its input rows permuted
from ``(c, h, w)`` to our ``(h, w, c)`` flatten order.

Task ``k`` is named ``t{k:02d}`` so the sorted task order is the head order.

Example::

  w = load("W1", 8)
  params, batch = w.params, w.batch
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from mtl_jax import models
from mtl_jax import tasks as tasks_lib
from mtl_jax.models.heads import build_heads

PEER_DIR = os.environ.get(
    "MTL_JAX_PEER_WORKLOADS",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "reference",
                 "peer_workloads"))
WORKLOADS = ("W1", "W2", "W3")
PEER_WORKLOADS = ("W1", "W2")  # the ones with PyTorch peers and .npz files
CONVS = ("xla_nhwc", "xla_nchw", "im2col")
POOLS = ("reduce_window", "reshape")
# The fastest W2 formulation measured on XLA:CPU (see benchmarks/README.md).
DEFAULT_CONV = "xla_nhwc"
DEFAULT_POOL = "reshape"
BATCH = 256
LEARNING_RATE = 1e-3


def task_name(k: int) -> str:
  """The name of head ``k``: ``t00``, ``t01``, ... (sorted = head order)."""
  return f"t{k:02d}"


def npz_path(workload: str, num_tasks: int) -> str:
  return os.path.abspath(os.path.join(PEER_DIR, f"{workload}_K{num_tasks}.npz"))


def read_npz(workload: str, num_tasks: int) -> dict[str, np.ndarray]:
  """The raw peer arrays of one case (PyTorch layouts)."""
  path = npz_path(workload, num_tasks)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"No peer workload file {path}; set MTL_JAX_PEER_WORKLOADS to the "
        "folder holding W1_K*.npz / W2_K2.npz.")
  with np.load(path) as data:
    return {k: data[k] for k in data.files}


# ----------------------------------------------------------------- W2 trunk


def _im2col(x: jax.Array, k: int) -> jax.Array:
  """``[B, H, W, C] -> [B, H-k+1, W-k+1, k*k*C]`` patches, (kh, kw, c) order."""
  ho, wo = x.shape[1] - k + 1, x.shape[2] - k + 1
  cols = [x[:, i:i + ho, j:j + wo, :] for i in range(k) for j in range(k)]
  return jnp.concatenate(cols, axis=-1)


def _pool_reshape(x: jax.Array, nchw: bool) -> jax.Array:
  """2x2 max-pool (stride 2) as a reshape and a max over the window axes."""
  if nchw:
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _pool_window(x: jax.Array, nchw: bool) -> jax.Array:
  """2x2 max-pool (stride 2) with ``lax.reduce_window`` (what nnx uses)."""
  window = (1, 1, 2, 2) if nchw else (1, 2, 2, 1)
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, window, "VALID")


class LeNet(nnx.Module):
  """LeNet trunk of W2: 2 conv blocks (conv 5x5, max-pool 2, ReLU), then fc.

  Args:
    input_shape: ``(H, W, C)`` of one example (``(36, 36, 1)`` in W2).
    conv: formulation of the convolutions: ``xla_nhwc``
      (``lax.conv_general_dilated`` on NHWC), ``xla_nchw`` (the same on NCHW
      inputs, as PyTorch) or ``im2col`` (patches by slicing, then one matmul).
    pool: ``reshape`` (reshape + max) or ``reduce_window``.
    rngs: initialisation keys (weights are normally loaded from the peers).
  """

  def __init__(self, input_shape: Sequence[int] = (36, 36, 1), *,
               channels: Sequence[int] = (10, 20), features: int = 50,
               kernel_size: int = 5, conv: str = DEFAULT_CONV,
               pool: str = DEFAULT_POOL, rngs: nnx.Rngs):
    if conv not in CONVS or pool not in POOLS:
      raise ValueError(f"conv must be in {CONVS} and pool in {POOLS}; got "
                       f"{conv!r}, {pool!r}.")
    h, w, c = input_shape
    init = nnx.initializers.lecun_normal()
    self.kernels = nnx.List()
    self.biases = nnx.List()
    for out in channels:
      self.kernels.append(nnx.Param(init(rngs.params(), (kernel_size, kernel_size, c, out))))
      self.biases.append(nnx.Param(jnp.zeros((out,))))
      c, h, w = out, (h - kernel_size + 1) // 2, (w - kernel_size + 1) // 2
    self.fc = nnx.Linear(h * w * c, features, rngs=rngs)
    self.conv = conv
    self.pool = pool
    self.out_features = features

  def _conv(self, x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    if self.conv == "im2col":
      k = kernel.shape[0]
      return _im2col(x, k) @ kernel.reshape(-1, kernel.shape[-1]) + bias
    if self.conv == "xla_nhwc":
      y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
      return y + bias
    y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                     dimension_numbers=("NCHW", "HWIO", "NCHW"))
    return y + bias[:, None, None]

  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    del train
    nchw = self.conv == "xla_nchw"
    pool = _pool_reshape if self.pool == "reshape" else _pool_window
    for kernel, bias in zip(self.kernels, self.biases):
      x = nnx.relu(pool(self._conv(x, kernel[...], bias[...]), nchw))
    if nchw:  # flatten in our (h, w, c) order so one fc layout serves all
      x = jnp.transpose(x, (0, 2, 3, 1))
    return self.fc(x.reshape(x.shape[0], -1))


class LeNetMTL(nnx.Module):
  """Hard sharing with the :class:`LeNet` trunk: ``shared`` + ``tasks`` heads."""

  def __init__(self, tasks: Sequence[tasks_lib.Task], *, conv: str = DEFAULT_CONV,
               pool: str = DEFAULT_POOL, rngs: nnx.Rngs):
    self.shared = LeNet(conv=conv, pool=pool, rngs=rngs)
    self.tasks = build_heads(tasks, self.shared.out_features, hidden=(), rngs=rngs)

  def encode(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    return self.shared(x, train=train)

  def decode(self, z: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    return {name: head(z, train=train) for name, head in self.tasks.items()}

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    return self.decode(self.encode(x, train=train), train=train)


# ----------------------------------------------------------------- loading


def _linear(npz, prefix: str) -> dict:
  return {"kernel": npz[f"{prefix}.weight"].T.copy(), "bias": npz[f"{prefix}.bias"]}


def _heads(npz, num_tasks: int) -> dict:
  return {task_name(k): {"out": _linear(npz, f"head{k}")} for k in range(num_tasks)}


def _conv_kernel(w: np.ndarray) -> np.ndarray:
  """PyTorch ``[out, in, kh, kw]`` -> flax ``[kh, kw, in, out]``."""
  return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


def _fc_from_nchw(w: np.ndarray, c: int, h: int, wd: int) -> np.ndarray:
  """fc weight ``[out, c*h*w]`` (NCHW flatten) -> kernel ``[h*w*c, out]``."""
  out = w.shape[0]
  return np.ascontiguousarray(
      w.reshape(out, c, h, wd).transpose(2, 3, 1, 0).reshape(h * wd * c, out))


def w1_params(npz, num_tasks: int) -> dict:
  """W1's weights as our ``hard_sharing`` MLP params."""
  shared = {"layers": {0: _linear(npz, "enc.net.0"), 1: _linear(npz, "enc.net.2")}}
  return {"shared": shared, "tasks": _heads(npz, num_tasks), "cross": {}}


def w2_params(npz, num_tasks: int) -> dict:
  """W2's weights as :class:`LeNetMTL` params."""
  fc = npz["enc.fc.weight"]
  c = npz["enc.conv2.weight"].shape[0]
  side = int(round((fc.shape[1] // c) ** 0.5))
  shared = {
      "kernels": {0: _conv_kernel(npz["enc.conv1.weight"]),
                  1: _conv_kernel(npz["enc.conv2.weight"])},
      "biases": {0: npz["enc.conv1.bias"], 1: npz["enc.conv2.bias"]},
      "fc": {"kernel": _fc_from_nchw(fc, c, side, side), "bias": npz["enc.fc.bias"]},
  }
  return {"shared": shared, "tasks": _heads(npz, num_tasks), "cross": {}}


def _tasks(workload: str, num_tasks: int) -> tuple[tasks_lib.Task, ...]:
  spec = (dict(kind="regression", dim=1) if workload == "W1" else
          dict(kind="multiclass", num_classes=10))
  return tasks_lib.from_config({task_name(k): spec for k in range(num_tasks)})


def _batch(workload: str, npz, num_tasks: int, conv: str) -> dict:
  x = npz["x"]
  if workload == "W2" and conv != "xla_nchw":
    x = np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))
  cast = np.float32 if workload == "W1" else np.int32
  targets = {task_name(k): npz[f"y{k}"].astype(cast) for k in range(num_tasks)}
  mask = {name: np.ones(x.shape[0], bool) for name in targets}
  return {"inputs": x, "targets": targets, "mask": mask}


@dataclasses.dataclass
class Workload:
  """One benchmark case: our model (partitioned), loaded params and batch.

  Attributes:
    name: ``W1`` or ``W2``.
    num_tasks: ``K``.
    tasks: our task declarations (``t00``, ``t01``, ...).
    graphdef: the model's graph definition.
    params: ``{'shared', 'tasks', 'cross'}`` with the peers' initial weights.
    rest: non-parameter state (empty for both workloads).
    batch: ``{'inputs', 'targets', 'mask'}`` numpy arrays.
    npz: the raw peer arrays (PyTorch layouts).
    conv: the W2 convolution formulation (``None`` for W1).
  """

  name: str
  num_tasks: int
  tasks: tuple
  graphdef: Any
  params: dict
  rest: dict
  batch: dict
  npz: dict
  conv: str | None = None

  @property
  def batch_size(self) -> int:
    return int(self.batch["inputs"].shape[0])


def _check_structure(loaded: dict, expected: dict) -> dict:
  """Casts ``loaded`` to the model's dtypes; raises on any shape mismatch.

  Leaves stay numpy arrays, so every jitted use copies them to fresh device
  buffers and a donated train state never invalidates the workload.
  """
  if jax.tree.structure(loaded) != jax.tree.structure(expected):
    raise ValueError(f"Loaded params {jax.tree.structure(loaded)} do not match "
                     f"the model's {jax.tree.structure(expected)}.")
  def cast(a, b):
    if a.shape != b.shape:
      raise ValueError(f"Loaded shape {a.shape} != model shape {b.shape}.")
    return np.asarray(a, b.dtype)
  return jax.tree.map(cast, loaded, expected)


def _model(workload: str, tasks, conv: str, pool: str) -> nnx.Module:
  if workload == "W1":
    cfg = ml_collections.ConfigDict(dict(
        arch="hard_sharing", trunk=dict(kind="mlp", hidden=(256, 256), act="relu"),
        head=dict(hidden=())))
    return models.build(tasks, (64,), **cfg)
  return LeNetMTL(tasks, conv=conv, pool=pool, rngs=nnx.Rngs(0))


def load_w3(num_tasks: int, *, width: int = 64, image_size: int = 32,
            batch: int = BATCH, seed: int = 0) -> Workload:
  """W3: ResNet-18 hard sharing with ``num_tasks`` 10-class heads (see above)."""
  tasks = _tasks("W3", num_tasks)
  cfg = ml_collections.ConfigDict(dict(
      arch="hard_sharing", trunk=dict(kind="resnet", blocks=(2, 2, 2, 2), width=width),
      head=dict(hidden=())))
  p = models.partition(models.build(tasks, (image_size, image_size, 3), seed=seed, **cfg))
  rng = np.random.default_rng(seed)
  inputs = rng.random((batch, image_size, image_size, 3), np.float32)
  targets = {t.name: rng.integers(0, 10, batch).astype(np.int32) for t in tasks}
  data = {"inputs": inputs, "targets": targets,
          "mask": {t.name: np.ones(batch, bool) for t in tasks}}
  params = jax.tree.map(np.asarray, models.params_of(p))
  return Workload("W3", num_tasks, tasks, p.graphdef, params, p.rest, data, {})


def load(workload: str, num_tasks: int, *, conv: str = DEFAULT_CONV,
         pool: str = DEFAULT_POOL) -> Workload:
  """Builds our model for ``workload`` with ``num_tasks`` heads and the peers' weights.

  Args:
    workload: ``W1`` (K in {2, 8, 32}), ``W2`` (K = 2) or ``W3`` (any K;
      :func:`load_w3` with its defaults).
    num_tasks: number of tasks ``K``.
    conv: W2 only, see :class:`LeNet`.
    pool: W2 only, see :class:`LeNet`.

  Returns:
    A :class:`Workload`.
  """
  if workload not in WORKLOADS:
    raise ValueError(f"Unknown workload {workload!r}; valid: {WORKLOADS}.")
  if workload == "W3":
    return load_w3(num_tasks)
  npz = read_npz(workload, num_tasks)
  tasks = _tasks(workload, num_tasks)
  p = models.partition(_model(workload, tasks, conv, pool))
  loaded = (w1_params if workload == "W1" else w2_params)(npz, num_tasks)
  params = _check_structure(loaded, models.params_of(p))
  return Workload(workload, num_tasks, tasks, p.graphdef, params, p.rest,
                  _batch(workload, npz, num_tasks, conv), npz,
                  conv if workload == "W2" else None)


# ----------------------------------------------------------------- numpy reference


def _np_conv_nchw(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
  """PyTorch ``Conv2d`` (valid, stride 1) on NCHW in float64."""
  k = w.shape[-1]
  win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
  return np.einsum("bchwij,ocij->bohw", win, w) + b[None, :, None, None]


def _np_pool_nchw(x: np.ndarray) -> np.ndarray:
  b, c, h, w = x.shape
  return x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def numpy_reference(workload: str, npz: dict, num_tasks: int) -> tuple[np.ndarray, np.ndarray]:
  """The PyTorch forward in float64 numpy: ``(losses [K], outputs [K, B, out])``.

  Uses the raw ``.npz`` arrays in PyTorch layouts, so it checks our layout
  conversions independently.
  """
  f = {k: v.astype(np.float64) for k, v in npz.items() if k.startswith(("enc", "head", "x"))}
  relu = lambda v: np.maximum(v, 0.0)
  if workload == "W1":
    z = relu(f["x"] @ f["enc.net.0.weight"].T + f["enc.net.0.bias"])
    z = relu(z @ f["enc.net.2.weight"].T + f["enc.net.2.bias"])
  else:
    z = relu(_np_pool_nchw(_np_conv_nchw(f["x"], f["enc.conv1.weight"], f["enc.conv1.bias"])))
    z = relu(_np_pool_nchw(_np_conv_nchw(z, f["enc.conv2.weight"], f["enc.conv2.bias"])))
    z = z.reshape(z.shape[0], -1) @ f["enc.fc.weight"].T + f["enc.fc.bias"]
  outs, losses = [], []
  for k in range(num_tasks):
    out = z @ f[f"head{k}.weight"].T + f[f"head{k}.bias"]
    y = npz[f"y{k}"]
    if workload == "W1":
      loss = np.mean((out - y.astype(np.float64)) ** 2)
    else:
      shifted = out - out.max(axis=1, keepdims=True)
      logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
      loss = -np.mean(logp[np.arange(len(y)), y])
    outs.append(out)
    losses.append(loss)
  return np.array(losses), np.stack(outs)
