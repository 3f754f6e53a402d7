"""The benchmark workloads load the peers' weights and batch exactly.

Our forward outputs and per-task losses must equal a float64 numpy
re-implementation of the PyTorch computation on the raw ``.npz`` arrays
(PyTorch layouts), so the peer benchmarks compare byte-identical work.
"""

import os

import jax
import numpy as np
import pytest

from benchmarks import workloads as wl
from mtl_jax.models.partition import merge
from mtl_jax.train.step import make_forward

pytestmark = pytest.mark.skipif(
    not os.path.exists(wl.npz_path("W2", 2)),
    reason="shared/reference/peer_workloads is not available")


def _ours(work):
  """Per-task losses [K] and outputs [K, B, out] of our model."""
  def fn(params, rest, batch):
    losses, _ = make_forward(work.graphdef, work.tasks)(params, rest, batch)
    preds = merge(work.graphdef, params, rest)(batch["inputs"])
    return losses, [preds[t.name] for t in work.tasks]
  losses, outs = jax.jit(fn)(work.params, work.rest, work.batch)
  return np.asarray(losses), np.stack([np.asarray(o) for o in outs])


def _check(work):
  losses, outs = _ours(work)
  ref_losses, ref_outs = wl.numpy_reference(work.name, work.npz, work.num_tasks)
  np.testing.assert_allclose(outs, ref_outs, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-5)


def test_w1_matches_pytorch_computation():
  work = wl.load("W1", 2)
  assert [t.name for t in work.tasks] == ["t00", "t01"]
  assert work.batch["inputs"].shape == (256, 64)
  assert all(m.all() for m in work.batch["mask"].values())
  _check(work)


@pytest.mark.parametrize("conv,pool", [(wl.DEFAULT_CONV, wl.DEFAULT_POOL),
                                       ("xla_nchw", "reduce_window")])
def test_w2_matches_pytorch_computation(conv, pool):
  work = wl.load("W2", 2, conv=conv, pool=pool)
  layout = (256, 1, 36, 36) if conv == "xla_nchw" else (256, 36, 36, 1)
  assert work.batch["inputs"].shape == layout
  assert work.batch["targets"]["t01"].dtype == np.int32
  _check(work)


def test_im2col_conv_equals_xla_conv():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 7, 7, 3)).astype(np.float32)
  k = rng.normal(size=(5, 5, 3, 4)).astype(np.float32)
  ours = wl._im2col(x, 5) @ k.reshape(-1, 4)  # pylint: disable=protected-access
  ref = jax.lax.conv_general_dilated(x, k, (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_unknown_workload_and_formulation_raise():
  with pytest.raises(ValueError, match="Unknown workload"):
    wl.load("W4", 2)
  with pytest.raises(ValueError, match="conv must be"):
    wl.load("W2", 2, conv="fft")


def test_w3_resnet18_step_runs_on_a_tiny_version():
  """W3 (the GPU workload) at toy size: loads, and one step of MGDA on the
  representation engine runs."""
  from benchmarks import throughput as tp
  work = wl.load_w3(3, width=2, image_size=8, batch=4)
  assert [t.name for t in work.tasks] == ["t00", "t01", "t02"]
  assert work.batch["inputs"].shape == (4, 8, 8, 3) and jax.tree.leaves(work.rest)
  assert tp.cases(["W1", "W2", "W3"], [2, 8]) == [
      ("W1", 2), ("W1", 8), ("W2", 2), ("W3", 2), ("W3", 8)]
  # One engine: a ResNet-18 step takes most of a minute to compile here, and
  # the engines themselves are tested on small models in tests/train.
  spec = tp.MethodSpec("mgda", aggregator="mgda")
  row = tp.measure(work, spec, "representation", steps=1, warmup=0, min_time=0.0)
  assert row["workload"] == "W3" and row["steps_per_s"] > 0
